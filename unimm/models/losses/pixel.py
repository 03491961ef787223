"""Pixel reconstruction losses of a pixel tokenizer: L1 / L2 + LPIPS (LlamaGen / taming
layout). The adversarial term lives with the discriminator (models/discriminators)."""
import torch.nn.functional as F
from torch import nn

from unimm.registry import MODELS


@MODELS.register_module()
class PixelReconstructionLoss(nn.Module):
    """``forward(recon, target)`` on images in [-1, 1] -> dict of weighted losses:
    ``loss_l1`` (mean absolute error), ``loss_l2`` (mean squared error) and ``loss_lpips``
    (batch-mean LPIPS); a term whose weight is 0 is left out of the dict. L1 / L2 are
    computed in fp32 (exact targets); LPIPS in the reconstruction's dtype (bf16: a bf16
    VGG, as in training).

    Args:
        l1_weight, l2_weight, perceptual_weight: weights of the three terms.
        lpips: config of the perceptual network, e.g. ``dict(type='LPIPSLoss')`` (weights
            from $UNIMM_LPIPS_WEIGHTS or ~/.cache/unimm/lpips_vgg.safetensors) or
            ``dict(type='LPIPSLoss', weights='PATH')``; ``None`` turns the term off
            (then ``perceptual_weight`` must be 0).
    """

    def __init__(self, l1_weight=1.0, l2_weight=0.0, perceptual_weight=1.0,
                 lpips=dict(type='LPIPSLoss')):
        super().__init__()
        self.l1_weight = float(l1_weight)
        self.l2_weight = float(l2_weight)
        self.perceptual_weight = float(perceptual_weight)
        if self.perceptual_weight > 0 and lpips is None:
            raise ValueError('PixelReconstructionLoss: perceptual_weight > 0 needs an lpips '
                             "config (e.g. dict(type='LPIPSLoss')); or set perceptual_weight=0")
        self.lpips = MODELS.build(dict(lpips)) if lpips is not None and self.perceptual_weight > 0 \
            else None

    def forward(self, recon, target):
        out = {}
        if self.l1_weight:
            out['loss_l1'] = self.l1_weight * F.l1_loss(recon.float(), target.float())
        if self.l2_weight:
            out['loss_l2'] = self.l2_weight * F.mse_loss(recon.float(), target.float())
        if self.lpips is not None:
            out['loss_lpips'] = self.perceptual_weight * self.lpips(recon, target)
        return out
