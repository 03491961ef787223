"""Text-to-image training data. Image-caption pairs come from the generic datasets
(``ImageTextJsonlDataset``, ``WebDatasetShards``, ``ShapesCaptionDataset``: items with
``image`` and ``text``) and are tokenised on the fly by the model's frozen image
tokenizer; the fast path reads pre-tokenised shards written by tools/pretokenize.py,
whose items carry ``visual_ids`` instead of the image.

A pre-tokenised sample is a webdataset member group ``<key>.ids.npy`` (int32 [h*w]
global ids), ``<key>.txt`` (the caption) and ``<key>.json`` (source name, grid).
"""
import glob
import io
import os

import numpy as np
import torch

from unimm.datasets.image_datasets import WebDatasetShards, logger, write_shards
from unimm.registry import DATASETS

IDS_KEY = 'ids.npy'


def encode_ids(ids):
    """Global ids -> .npy bytes (int32)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(ids, dtype=np.int32), allow_pickle=False)
    return buf.getvalue()


def decode_ids(data):
    """.npy bytes -> LongTensor of global ids."""
    return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False).astype(np.int64))


def write_token_shards(samples, out_dir, shard_size=10000):
    """Write (visual_ids, text, source name) triples as shards ``out_dir/shard-%06d.tar``."""
    return write_shards(({IDS_KEY: encode_ids(ids), 'txt': text, 'json': {'source': name}}
                         for ids, text, name in samples),
                        os.path.join(out_dir, 'shard-%06d.tar'), maxcount=shard_size)


@DATASETS.register_module()
class PretokenizedT2IShards(WebDatasetShards):
    """Pre-tokenised (caption, visual ids) samples; item dict(visual_ids [h*w], text, path).

    ``urls``: a folder (all its ``*.tar``), a brace pattern or a list; sharding over
    ranks/workers and the shuffle buffer are WebDatasetShards'."""

    def __init__(self, urls, shuffle_buffer=0, seed=0):
        if isinstance(urls, str) and os.path.isdir(urls):
            found = sorted(glob.glob(os.path.join(urls, '*.tar')))
            if not found:
                raise FileNotFoundError(f'no .tar shards in {urls!r}: write them with '
                                        'python tools/pretokenize.py')
            urls = found
        super().__init__(urls, transform=None, image_keys=(), text_keys=('txt',),
                         shuffle_buffer=shuffle_buffer, seed=seed)

    def _decode(self, group, seed):
        name = f"{group['__url__']}#{group['__key__']}"
        try:
            return dict(visual_ids=decode_ids(group[IDS_KEY]), text=self._text(group), path=name)
        except (KeyError, ValueError) as err:  # missing member, bad .npy or text bytes
            logger.warning('skipping sample %s: %s: %s', name, type(err).__name__, err)
            return None
