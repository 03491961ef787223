"""Held-out loss: a model's own training loss on held-out data, deterministically (no
caption drop). Where sampled-image metrics are uninformative (the shapes-world demo's
GenEval sits between its tokenizer ceiling and a random-token floor above it,
docs/generation.md), the held-out cross-entropy of a task is the sensitive way to
compare models on it: visual-token CE for generation, answer-token CE for VQA."""
import torch

from unimm.datasets.collate import collate_skip_corrupt
from unimm.registry import DATASETS, METRICS
from unimm.utils.batch import move_batch, sum_losses


@METRICS.register_module()
class HeldOutLossEvaluator:
    """Mean over batches of ``batch_size`` held-out items of the sum of the model's
    ``loss*`` entries (a batch of one task: that task's loss), with the model's
    ``uncond_prob`` set to 0 while it runs. ``max_samples``: the first items only."""

    def __init__(self, dataset, batch_size=32, max_samples=None):
        self.dataset = DATASETS.build(dataset, path='dataset')
        self.batch_size, self.max_samples = batch_size, max_samples

    @torch.no_grad()
    def __call__(self, model, work_dir=None):
        param = next(model.parameters())
        collate = getattr(self.dataset, 'collate_fn', collate_skip_corrupt)
        n = len(self.dataset) if self.max_samples is None else \
            min(self.max_samples, len(self.dataset))
        uncond_prob = getattr(model, 'uncond_prob', None)
        if uncond_prob is not None:
            model.uncond_prob = 0.0
        losses = []
        try:
            for start in range(0, n, self.batch_size):
                batch = collate([self.dataset[i]
                                 for i in range(start, min(start + self.batch_size, n))])
                batch.pop('num_skipped', None)
                out = model(move_batch(batch, param.device, param.dtype))
                losses.append(float(sum_losses(out, type(model).__name__)))
        finally:
            if uncond_prob is not None:
                model.uncond_prob = uncond_prob
        return {'loss': sum(losses) / len(losses), 'num_samples': n,
                'num_batches': len(losses)}
