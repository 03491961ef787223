"""Joint training, VILA-U / MUSE-VL style: one codebook on an encoder initialised from the
text-aligned teacher and trained, with the semantic loss (a semantic decoder's cosine to
the frozen teacher's features) and the pixel losses optimised together, where SemHiTok
decouples them into stages."""
import torch

from unimm.models.encoders.semantic import code_projection, frozen_teacher
from unimm.models.losses import cosine_loss
from unimm.registry import MODELS

from .one_stage import OneStageTokenizer


@MODELS.register_module()
class JointTokenizer(OneStageTokenizer):
    """Args:
        encoder: the trainable tower (``SemanticEncoder`` with ``frozen=False``, loaded from
            the teacher folder: "initialised from the teacher").
        teacher: the frozen target tower (``SemanticEncoder``, ``frozen=True``).
        quantizer: one codebook (``VectorQuantizer``) on the projected encoder features.
        semantic_decoder: codes -> teacher features (``SemanticDecoder``).
        pixel_decoder, pixel_loss, adv_weight, adaptive_adv_weight: as in SemHiTok.
        semantic_weight: weight of the cosine loss against the pixel losses.
    """

    def __init__(self, encoder, teacher, quantizer, semantic_decoder, pixel_decoder,
                 pixel_loss, semantic_weight=1.0, adv_weight=0.1, adaptive_adv_weight=False):
        super().__init__()
        self.encoder = MODELS.build(encoder)
        self.teacher = MODELS.build(frozen_teacher(teacher))
        self.quantizer = MODELS.build(quantizer)
        self.proj = code_projection(self.encoder.out_dim, self.quantizer.dim)
        self.semantic_decoder = MODELS.build(semantic_decoder)
        self.pixel_decoder = MODELS.build(pixel_decoder)
        self.pixel_loss = MODELS.build(pixel_loss)
        self.semantic_weight = semantic_weight
        self.adv_weight, self.adaptive_adv_weight = adv_weight, adaptive_adv_weight

    def quantize(self, images):
        feats = self.encoder(images)
        return self.quantizer(self.proj(feats.to(self.proj[0].weight.dtype)))

    def forward(self, batch, discriminator=None, step=0):
        images = batch['image']
        q = self.quantize(images)
        out = self.pixel_losses(images, self.pixel_decoder(q.quantized), discriminator, step, q,
                                'vq')
        with torch.no_grad():
            target = self.teacher(images)
        out['loss_cosine'] = self.semantic_weight * cosine_loss(
            self.semantic_decoder(q.quantized), target)
        return out
