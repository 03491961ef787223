"""What every quantizer returns, and the small pieces all of them share: codebook
statistics and restart candidates (the cross-rank synchronisation that keeps EMA
codebooks identical is in unimm/utils/dist.py)."""
from dataclasses import dataclass, field

import torch


@dataclass
class QuantizerOutput:
    """quantized [B,N,C] (straight-through), ids [B,N] long, loss (scalar tensor) and
    detached statistics to log."""
    quantized: torch.Tensor
    ids: torch.Tensor
    loss: torch.Tensor
    stats: dict = field(default_factory=dict)


def code_counts(ids, num_codes):
    """Histogram of ``ids`` over ``num_codes`` bins (long). Unlike torch.bincount on a GPU
    it does not wait for the device to size its output."""
    flat = ids.flatten()
    return flat.new_zeros(num_codes).scatter_add_(0, flat, torch.ones_like(flat))


def perplexity(counts):
    """exp(entropy) of the code histogram: the effective number of codes in use."""
    p = counts.float() / counts.sum().clamp_min(1)
    return torch.special.entr(p).sum().exp()


RESTART_NOISE = 0.01  # per-component std of the nudge a restarted code gets


def jittered(vectors):
    """Restart candidates nudged by Gaussian noise (std ``RESTART_NOISE`` per component):
    codes restarted from identical features (a flat background's patches) then stay apart
    instead of tying exactly, where float rounding alone would pick between them."""
    return vectors + RESTART_NOISE * torch.randn_like(vectors)
