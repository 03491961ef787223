"""Length-grouped batching (HF Trainer's / LLaVA's ``group_by_length``): batches of
similar-length items waste less compute on padding, while the order stays random."""
import torch


def length_grouped_indices(lengths, batch_size, world_size, rank, seed, epoch, drop_last=True):
    """This rank's item order for ``epoch``: a deterministic function of (seed, epoch).

    A random permutation is cut into mega-batches of up to 50 global batches (global =
    ``batch_size * world_size``); each mega-batch is sorted by length (longest first) and
    cut into global batches, whose order is then shuffled; rank r takes the r-th
    ``batch_size`` slice of every global batch, so all ranks step on similar lengths."""
    n = len(lengths)
    global_batch = batch_size * world_size
    g = torch.Generator().manual_seed(seed * 1000003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    if drop_last:
        perm = perm[:n // global_batch * global_batch]
    else:  # pad by repeating the head, like DistributedSampler
        perm += perm[:(-len(perm)) % global_batch]
    mega = global_batch * max(1, min(50, n // (4 * global_batch)))
    batches = []
    for start in range(0, len(perm), mega):
        chunk = sorted(perm[start:start + mega], key=lambda i: -lengths[i])
        batches += [chunk[k:k + global_batch] for k in range(0, len(chunk), global_batch)]
    order = torch.randperm(len(batches), generator=g).tolist()
    return [i for b in order for i in batches[b][rank * batch_size:(rank + 1) * batch_size]]
