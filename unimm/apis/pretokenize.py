"""Pre-tokenise an image-caption dataset into shards of visual ids (behind
tools/pretokenize.py): the fast path of text-to-image training, where the frozen image
tokenizer then never runs. Shards are DIR/shard-%06d.tar, read by
PretokenizedT2IShards(urls=DIR)."""
import time

import torch

from unimm.datasets.collate import collate_skip_corrupt
from unimm.datasets.t2i import write_token_shards
from unimm.engine.config import load_config
from unimm.models.mllm.generation import load_image_tokenizer
from unimm.registry import DATASETS
from unimm.utils.build import ConfigError


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


def pretokenize(config, out, source='train_dataloader.dataset', tokenizer=None, batch_size=64,
                num_workers=0, shard_size=10000, cfg_options=None):
    """Tokenise the dataset at key path ``source`` of ``config`` (items with 'image' and
    'text') with the tokenizer export ``tokenizer`` (default: the config's
    model.image_tokenizer) into shards under ``out``; returns the shard paths."""
    cfg = load_config(config, cfg_options or {})
    folder = tokenizer or cfg.model.get('image_tokenizer')
    if not folder:
        raise ConfigError('no tokenizer: pass --tokenizer or set model.image_tokenizer')
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    image_tokenizer = load_image_tokenizer(folder).to(device)
    dataset = DATASETS.build(lookup(cfg, source), path=source)
    start = time.time()
    paths = write_token_shards(tokenised_samples(dataset, image_tokenizer, batch_size,
                                                 num_workers, device), out, shard_size)
    print(f'wrote {len(paths)} shards to {out} in {time.time() - start:.0f} s')
    return paths
