"""Mixed-task training data for a unified MLLM: understanding samples (LLaVA
conversations) and generation samples (image-text pairs, raw or pre-tokenised) in one
stream, at a fixed ratio.

Which task stream position p gets (per rank and DataLoader worker): understanding iff
floor((p + 1) r) > floor(p r), r the understanding ratio — a stratified interleave, so
any B consecutive samples hold B*r (rounded down or up) understanding samples, exactly
B*r when that is an integer: every batch trains both tasks when B*r >= 1. Each task
reads its own source in its own order: a map-style dataset (``LLaVADataset``,
``ShapesCaptionDataset``, ...) is permuted by (seed, epoch) and split evenly over
(rank, worker); an iterable one (``WebDatasetShards``, ``PretokenizedT2IShards``) shards
and shuffles itself. The epoch ends when either source runs out (HF datasets'
``first_exhausted``); the next one reshuffles both. The stream is a function of (seed,
epoch, rank, worker), so the runner's resume, which re-reads the epoch up to its saved
batch, is exact.

Batches mix the tasks rather than alternating task-pure batches: every optimizer step
sees both, both losses are logged at every step, all ranks log the same keys (the runner
all-reduces logged scalars by key) and no trainable weight goes a step without a
gradient. ``collate_fn`` collates each part with its own dataset's collate:
``{'task': [B] (0 understanding, 1 generation), 'und': LLaVA batch, 'gen': text-to-image
batch}``; `UnifiedMLLM.forward` turns them into ``loss_und`` and ``loss_gen``.
"""
import itertools
from fractions import Fraction

import torch
from torch.utils.data import IterableDataset, get_worker_info

from unimm.datasets.collate import collate_skip_corrupt
from unimm.datasets.image_datasets import derive_seed, rank_and_world_size
from unimm.registry import DATASETS

TASKS = ('und', 'gen')
_END = object()


@DATASETS.register_module()
class MixedTaskDataset(IterableDataset):
    """Args:
        understanding: registry config of the conversation dataset (LLaVA format).
        generation: registry config of the image-text dataset (items with ``text`` and
            ``image`` or ``visual_ids``).
        understanding_ratio: fraction of the stream that is understanding, in (0, 1);
            pick it so that batch_size * ratio is a whole number.
        seed: the order of map-style sources (with the epoch).
    """

    def __init__(self, understanding, generation, understanding_ratio=0.5, seed=0):
        if not 0 < understanding_ratio < 1:
            raise ValueError('MixedTaskDataset.understanding_ratio must be in (0, 1), got '
                             f'{understanding_ratio}')
        self.sources = {'und': DATASETS.build(understanding, path='understanding'),
                        'gen': DATASETS.build(generation, path='generation')}
        self.ratio = Fraction(understanding_ratio).limit_denominator(10000)
        self.seed = seed
        self.epoch = 0
        self.rank, self.world_size = rank_and_world_size()

    def set_epoch(self, epoch):
        self.epoch = epoch
        for source in self.sources.values():
            if hasattr(source, 'set_epoch'):
                source.set_epoch(epoch)

    def task_of(self, position):
        """'und' or 'gen' for stream position ``position`` (the stratified interleave)."""
        num, den = self.ratio.numerator, self.ratio.denominator
        return 'und' if (position + 1) * num // den > position * num // den else 'gen'

    def _source_stream(self, name, me, total):
        source = self.sources[name]
        if isinstance(source, IterableDataset):
            yield from source
            return
        g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, name))
        order = torch.randperm(len(source), generator=g)[me::total][:len(source) // total]
        for index in order.tolist():
            yield source[index]

    def __iter__(self):
        info = get_worker_info()
        num_workers, worker = (info.num_workers, info.id) if info else (1, 0)
        total, me = self.world_size * num_workers, self.rank * num_workers + worker
        streams = {name: self._source_stream(name, me, total) for name in TASKS}
        for position in itertools.count():
            name = self.task_of(position)
            item = next(streams[name], _END)
            if item is _END:
                return
            yield TASKS.index(name), item  # item None: unreadable, counted by collate_fn

    def collate_fn(self, samples):
        """``task`` [B], ``und`` and ``gen`` (each part by its dataset's own collate; a
        part without samples is left out) and the ``num_skipped`` count."""
        batch = {'task': torch.tensor([t for t, item in samples if item is not None],
                                      dtype=torch.long)}
        skipped = 0
        for k, name in enumerate(TASKS):
            items = [item for t, item in samples if t == k]
            if not items:
                continue
            collate = getattr(self.sources[name], 'collate_fn', collate_skip_corrupt)
            part = collate(items)
            skipped += int(part.pop('num_skipped', 0))
            if part:
                batch[name] = part
        if not batch['task'].numel():
            return {'num_skipped': skipped}
        batch['num_skipped'] = skipped
        return batch
