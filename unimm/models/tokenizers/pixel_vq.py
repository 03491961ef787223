"""LlamaGen-style pixel-only VQ tokenizer: pixel encoder -> VectorQuantizer (learnable,
low-dim, l2-normalised codes) -> pixel decoder, trained in one stage on pixel losses.
No text-aligned teacher anywhere: the control for what semantic guidance buys."""
from unimm.registry import MODELS

from .one_stage import OneStageTokenizer


@MODELS.register_module()
class PixelVQTokenizer(OneStageTokenizer):
    """Args: ``pixel_encoder`` (its ``out_dim`` = the quantizer's ``dim``),
    ``quantizer`` (``VectorQuantizer``), ``pixel_decoder`` (``in_dim`` = ``dim``),
    ``pixel_loss``; ``adv_weight`` / ``adaptive_adv_weight`` as in SemHiTok. The encoder
    may be the ViT of ``models/encoders/vit.py`` or any encoder of the same interface."""

    def __init__(self, pixel_encoder, quantizer, pixel_decoder, pixel_loss, adv_weight=0.1,
                 adaptive_adv_weight=False):
        super().__init__()
        self.pixel_encoder = MODELS.build(pixel_encoder)
        self.quantizer = MODELS.build(quantizer)
        self.pixel_decoder = MODELS.build(pixel_decoder)
        self.pixel_loss = MODELS.build(pixel_loss)
        self.adv_weight, self.adaptive_adv_weight = adv_weight, adaptive_adv_weight

    def quantize(self, images):
        return self.quantizer(self.pixel_encoder(images))

    def forward(self, batch, discriminator=None, step=0):
        images = batch['image']
        q = self.quantize(images)
        return self.pixel_losses(images, self.pixel_decoder(q.quantized), discriminator, step, q,
                                 'vq')
