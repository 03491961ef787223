"""Pre-tokenise an image-caption dataset into shards of visual ids (the fast path of
text-to-image training: the frozen image tokenizer then never runs during training).

python tools/pretokenize.py CONFIG --out DIR [--source train_dataloader.dataset]

The dataset is the config entry at --source (any dataset whose items have 'image' and
'text'); the tokenizer is the config's model.image_tokenizer unless --tokenizer is given.
Shards are DIR/shard-%06d.tar, read by PretokenizedT2IShards(urls=DIR)."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from unimm.datasets.collate import collate_skip_corrupt  # noqa: E402
from unimm.datasets.t2i import write_token_shards  # noqa: E402
from unimm.engine.config import DictAction, load_config  # noqa: E402
from unimm.models.mllm.generation import load_image_tokenizer  # noqa: E402
from unimm.registry import DATASETS  # noqa: E402
from unimm.utils.build import ConfigError  # noqa: E402


def lookup(cfg, key_path):
    node = cfg
    for key in key_path.split('.'):
        if not hasattr(node, 'keys') or key not in node:  # a Config or a dict
            raise ConfigError(f'--source {key_path!r}: the config has no {key!r} there')
        node = node[key]
    return node


def tokenised_samples(dataset, tokenizer, batch_size, num_workers, device):
    """(ids, caption, source name) per readable item, in dataset order."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                                         collate_fn=collate_skip_corrupt)
    count = 0
    for batch in loader:
        if 'image' not in batch:
            continue  # an all-corrupt batch
        ids = tokenizer.encode(batch['image'].to(device)).cpu()
        names = batch.get('path', batch.get('index'))
        for k in range(len(ids)):
            name = str(names[k].item() if torch.is_tensor(names[k]) else names[k]) \
                if names is not None else str(count)
            yield ids[k].tolist(), batch['text'][k], name
            count += 1


def main(argv=None):
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
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    folder = args.tokenizer or cfg.model.get('image_tokenizer')
    if not folder:
        raise ConfigError('no tokenizer: pass --tokenizer or set model.image_tokenizer')
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    tokenizer = load_image_tokenizer(folder).to(device)
    dataset = DATASETS.build(lookup(cfg, args.source), path=args.source)
    start = time.time()
    paths = write_token_shards(tokenised_samples(dataset, tokenizer, args.batch_size,
                                                 args.num_workers, device),
                               args.out, args.shard_size)
    print(f'wrote {len(paths)} shards to {args.out} in {time.time() - start:.0f} s')
    return paths


if __name__ == '__main__':
    main()
