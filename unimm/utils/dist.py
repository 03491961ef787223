"""Collectives that are no-ops in a single process: the quantizers keep their EMA codebooks
identical across ranks with them, the PatchGAN sums its gradient norms."""
import torch
import torch.distributed as dist


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
