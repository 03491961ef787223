"""Batch collation that tolerates corrupt samples (datasets return ``None`` for them)."""
from torch.utils.data import default_collate


def collate_skip_corrupt(samples):
    """Drop ``None`` samples, collate the rest (strings become lists) and record how
    many were dropped as ``batch['num_skipped']``; an all-corrupt batch is just
    ``{'num_skipped': n}``, which the runner skips."""
    kept = [s for s in samples if s is not None]
    num_skipped = len(samples) - len(kept)
    if not kept:
        return {'num_skipped': num_skipped}
    batch = default_collate(kept)
    batch['num_skipped'] = num_skipped
    return batch
