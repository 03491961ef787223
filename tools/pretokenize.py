"""Pre-tokenise an image-caption dataset into shards of visual ids (the fast path of
text-to-image training: the frozen image tokenizer then never runs during training).

python tools/pretokenize.py CONFIG --out DIR [--source train_dataloader.dataset]

The dataset is the config entry at --source (any dataset whose items have 'image' and
'text'); the tokenizer is the config's model.image_tokenizer unless --tokenizer is given.
Shards are DIR/shard-%06d.tar, read by PretokenizedT2IShards(urls=DIR)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.pretokenize import pretokenize  # noqa: E402
from unimm.engine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('--out', required=True, help='output folder of the shards')
    p.add_argument('--source', default='train_dataloader.dataset',
                   help='key path of the image-caption dataset in the config')
    p.add_argument('--tokenizer', help='tokenizer export folder (default: model.image_tokenizer)')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--num-workers', type=int, default=0)
    p.add_argument('--shard-size', type=int, default=10000)
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return pretokenize(args.config, args.out, args.source, args.tokenizer, args.batch_size,
                       args.num_workers, args.shard_size, args.cfg_options)


if __name__ == '__main__':
    main()
