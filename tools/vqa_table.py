"""Print a markdown table of held-out VQA results (``test_vqa.json`` written by
``tools/test.py CONFIG EXPORT --task vqa``): python tools/vqa_table.py NAME=EXPORT ..."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.tables import vqa_table  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('runs', nargs='+', help='NAME=EXPORT_FOLDER')
    args = p.parse_args(argv)
    print('\n'.join(vqa_table([run.split('=', 1) for run in args.runs])))


if __name__ == '__main__':
    main()
