"""Train any unimm recipe: python tools/train.py CONFIG [--work-dir] [--resume auto|PATH]
[--cfg-options k=v ...]. Launch on several GPUs or nodes with `torchrun` or `deepspeed`
(docs/distributed.md); `--cfg-options train_cfg.global_batch_size=N` keeps the global
batch whatever the number of GPUs, and a checkpoint resumes on any number of them."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.train import train  # noqa: E402
from unimm.engine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('config')
    p.add_argument('--work-dir', help='default: work_dirs/<config name>')
    p.add_argument('--resume', help="'auto' (newest complete checkpoint in the work dir) or a "
                   'checkpoint folder')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='override config keys, e.g. train_cfg.max_steps=10')
    p.add_argument('--local_rank', '--local-rank', type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    train(args.config, args.work_dir, args.resume, args.cfg_options)


if __name__ == '__main__':
    main()
