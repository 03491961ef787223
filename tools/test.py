"""Evaluate a trained model: python tools/test.py CONFIG CHECKPOINT --task NAME, where
CHECKPOINT is an exported folder (work_dir/export) and NAME a key of the config's test_cfg."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.test import evaluate  # noqa: E402
from unimm.engine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('config')
    p.add_argument('checkpoint', help='an exported model folder, e.g. work_dirs/NAME/export')
    p.add_argument('--task', required=True, help='a key of test_cfg in the config')
    p.add_argument('--work-dir', help='where results go; default: the checkpoint folder')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    results = evaluate(args.config, args.checkpoint, args.task, args.work_dir, args.cfg_options)
    print(json.dumps(results, indent=2))
    return results


if __name__ == '__main__':
    main()
