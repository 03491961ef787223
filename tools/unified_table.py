"""Print the markdown table of docs/unified.md from the runs' own files: held-out shapes
VQA (``test_vqa.json``), shapes GenEval (``test_shapes_geneval.json``), the held-out
per-task losses (``test_heldout_loss_{und,gen}.json``: answer-token and visual-token
cross-entropy) and the samples each task was trained on (the run's ``config.py``):

python tools/unified_table.py NAME=EXPORT ... [--random FOLDER_WITH_RANDOM_TOKEN_RESULT]"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.tables import unified_table  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('runs', nargs='+', help='NAME=EXPORT_FOLDER (<work_dir>/export)')
    p.add_argument('--random', help='folder with test_shapes_geneval_random.json (the floor)')
    args = p.parse_args(argv)
    print('\n'.join(unified_table([run.split('=', 1) for run in args.runs], args.random)))


if __name__ == '__main__':
    main()
