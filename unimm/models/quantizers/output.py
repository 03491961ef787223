"""What every quantizer returns, and the small pieces all of them share: codebook
statistics and the cross-rank synchronisation that keeps EMA codebooks identical."""
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


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


def distributed():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum_(*tensors):
    """Sum tensors over ranks in place (no-op in a single process)."""
    if distributed():
        for t in tensors:
            dist.all_reduce(t)


def broadcast_(*tensors, src=0):
    """Overwrite tensors with rank ``src``'s copy (no-op in a single process)."""
    if distributed():
        for t in tensors:
            dist.broadcast(t, src)


def first_available(proposals, available):
    """Per row, the proposal of the lowest rank that has one: ``proposals`` [R,d] and
    ``available`` [R] bool are this rank's; returns the rows every rank agrees on."""
    if not distributed():
        return proposals
    world = dist.get_world_size()
    all_props = [torch.empty_like(proposals) for _ in range(world)]
    available = available.float()  # NCCL gathers floats everywhere; bools not always
    all_avail = [torch.empty_like(available) for _ in range(world)]
    dist.all_gather(all_props, proposals.contiguous())
    dist.all_gather(all_avail, available)
    src = torch.stack(all_avail).argmax(0)  # the first rank holding a candidate
    return torch.stack(all_props)[src, torch.arange(len(src), device=src.device)]
