"""Evaluate a trained model: python tools/test.py CONFIG CHECKPOINT --task NAME, where
CHECKPOINT is an exported folder (work_dir/export) and NAME a key of the config's test_cfg."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from unimm.engine.config import DictAction, load_config  # noqa: E402
from unimm.registry import METRICS, MODELS  # noqa: E402
from unimm.utils.build import ConfigError  # noqa: E402


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
    cfg = load_config(args.config, args.cfg_options)
    tasks = dict(cfg.get('test_cfg') or {})
    if args.task not in tasks:
        raise ConfigError(f'--task {args.task!r}: the config\'s test_cfg has {sorted(tasks)}')
    if not os.path.isdir(args.checkpoint):
        raise FileNotFoundError(f'{args.checkpoint} is not a folder: pass the exported weights '
                                'folder that tools/train.py writes to <work_dir>/export')
    model_cls = MODELS.get(cfg.model.type)
    model = model_cls.from_pretrained(args.checkpoint)
    model.to('cuda' if torch.cuda.is_available() else 'cpu').eval()
    evaluator = METRICS.build(tasks[args.task], path=f'test_cfg.{args.task}')
    work_dir = args.work_dir or args.checkpoint
    os.makedirs(work_dir, exist_ok=True)
    results = evaluator(model, work_dir=work_dir)
    with open(os.path.join(work_dir, f'test_{args.task}.json'), 'w') as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))
    return results


if __name__ == '__main__':
    main()
