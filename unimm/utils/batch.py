"""A batch on its way into a model, and the losses out of it: shared by the training
runner and the held-out-loss evaluator."""
import torch


def move_batch(batch, device, dtype):
    """Batch to ``device``; floating tensors take the compute dtype."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device=device, dtype=dtype if batch.is_floating_point() else None,
                        non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_batch(v, device, dtype) for k, v in batch.items()}
    if isinstance(batch, list) and batch and isinstance(batch[0], torch.Tensor):
        return [move_batch(v, device, dtype) for v in batch]
    return batch


def sum_losses(out, where):
    """The sum of the ``loss*`` entries of a model's output (``where`` names the model in
    the error when there is none)."""
    losses = [v for k, v in out.items() if k.startswith('loss')]
    if not losses:
        raise RuntimeError(f'{where} returned no "loss*" entry: {sorted(out)}')
    return sum(losses)
