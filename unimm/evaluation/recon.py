"""Tokenizer reconstruction evaluation: PSNR, SSIM, LPIPS, rFID, codebook usage, a PNG grid
of originals vs reconstructions, and on the shapes world the scorer's attribute accuracy
(on the textured world also its pattern accuracy)."""
import os

import torch
from PIL import Image

from unimm.datasets.collate import collate_skip_corrupt
from unimm.registry import DATASETS, METRICS, MODELS


def to_uint8(images):
    """[B,3,H,W] in [-1,1] -> uint8 [B,H,W,3]."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu()


def save_grid(originals, recons, path, n=16):
    """Rows of originals above rows of their reconstructions."""
    a, b = to_uint8(originals[:n]), to_uint8(recons[:n])
    pairs = torch.stack([a, b], 1)  # [n, 2, H, W, 3]
    n, _, h, w, _ = pairs.shape
    grid = pairs.permute(1, 2, 0, 3, 4).reshape(2 * h, n * w, 3)
    Image.fromarray(grid.numpy()).save(path)


def _entropy(counts):
    """Entropy in nats of the distribution ``counts`` (any shape, last dim the values)."""
    p = counts / counts.sum(-1, keepdim=True).clamp(min=1)
    return -(p * p.clamp(min=1e-30).log()).sum(-1)


def codebook_usage(ids, vocab_size, factorization=None):
    """How the ids ``[B, N]`` use the vocabulary: the share of ``vocab_size`` in use, the
    number of distinct ids, the entropy (nats) of the ids pooled and of one grid position
    across images (averaged over positions) — the uncertainty a generator of these ids must
    model per token. With a ``factorization`` (K, m) (SemHiTok's) also the share of the K
    semantic codes and of the m sub-codes of each used code, and the semantic codes' entropy."""
    ids = ids.cpu().long().flatten(1)
    counts = torch.bincount(ids.flatten(), minlength=vocab_size).double()
    out = {'usage_global': (counts > 0).double().mean().item(),
           'distinct_ids': int((counts > 0).sum()),
           'id_entropy': _entropy(counts).item(),
           'position_entropy': sum(_entropy(torch.unique(col, return_counts=True)[1].double())
                                   for col in ids.t()).item() / ids.shape[1]}
    if factorization:
        per_code = counts.view(factorization)
        active = per_code > 0
        used = active.any(1)
        out.update(usage_semantic=used.double().mean().item(),
                   usage_subcodes=active[used].double().mean().item() if used.any() else 0.0,
                   semantic_entropy=_entropy(per_code.sum(1)).item())
    return out


@METRICS.register_module()
class ReconstructionEvaluator:
    """Runs encode -> decode over a dataset and scores the reconstructions. ``lpips``
    and ``fid`` are on by default and fail with instructions when their weights are
    missing (``fid_weights``: the converted FID Inception file, default as in
    ``InceptionFeatures``); ``shapes_scorer`` needs a shapes-world dataset and on a
    textured one also reports ``pattern_accuracy`` (shapes found with the right pattern
    family too)."""

    def __init__(self, dataset, batch_size=32, lpips=dict(type='LPIPSLoss'), fid=True,
                 shapes_scorer=False, grid_size=16, fid_weights=None):
        self.dataset = DATASETS.build(dataset)
        self.batch_size = batch_size
        self.lpips_cfg, self.fid, self.grid_size = lpips, fid, grid_size
        self.fid_weights = fid_weights
        if shapes_scorer and not hasattr(self.dataset, 'world'):
            raise ValueError('ReconstructionEvaluator: shapes_scorer needs a shapes dataset')
        self.shapes_scorer = shapes_scorer

    @torch.no_grad()
    def __call__(self, model, work_dir=None):
        from unimm.evaluation.recon_metrics import (FIDAccumulator, InceptionFeatures, psnr,
                                                    ssim)
        device = next(model.parameters()).device
        lpips = MODELS.build(self.lpips_cfg).to(device) if self.lpips_cfg else None
        fid = FIDAccumulator(InceptionFeatures(self.fid_weights).to(device)) \
            if self.fid else None
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size,
                                             collate_fn=collate_skip_corrupt)
        totals, n, all_ids, first = {}, 0, [], None
        for batch in loader:
            x = batch['image'].to(device)
            ids = model.encode(x)
            recon = model.decode(ids).float().clamp(-1, 1)
            scores = {'psnr': psnr(recon, x), 'ssim': ssim(recon, x)}
            if lpips is not None:
                scores['lpips'] = lpips(recon, x)
            if self.shapes_scorer:
                scores.update(self._shapes_scores(recon.cpu(), batch['index']))
            for k, v in scores.items():
                totals[k] = totals.get(k, 0.0) + float(v) * len(x)
            if fid is not None:
                fid.update(real=x, fake=recon)
            all_ids.append(ids.cpu())
            if first is None:
                first = (x.cpu(), recon.cpu())
            n += len(x)
        results = {k: v / n for k, v in totals.items()}
        if fid is not None:
            results['rfid'] = fid.compute()
        results.update(codebook_usage(torch.cat(all_ids), model.vocab_size,
                                      model.factorization))
        results['num_images'] = n
        if work_dir:
            path = os.path.join(work_dir, 'recon_grid.png')
            save_grid(*first, path, self.grid_size)
            results['grid'] = path
        return results

    def _shapes_scores(self, recons, indices):
        """Mean attribute accuracy of a batch; on the textured world also pattern accuracy."""
        from unimm.datasets.shapes import parse_image, score_caption_attributes
        world = self.dataset.world
        totals = {'attribute_accuracy': 0.0}
        if world.texture:
            totals['pattern_accuracy'] = 0.0
        for recon, index in zip(recons, indices):
            scene = world.scene(int(index))
            found = parse_image(recon, texture=world.texture)
            totals['attribute_accuracy'] += score_caption_attributes(recon, scene, found)
            if world.texture:
                totals['pattern_accuracy'] += score_caption_attributes(recon, scene, found, True)
        return {k: v / len(recons) for k, v in totals.items()}
