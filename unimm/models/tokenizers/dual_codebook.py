"""TokenFlow-style dual-codebook tokenizer: the text-aligned (by default frozen) encoder and
a pixel encoder, quantised with ONE shared index over paired semantic and pixel codebooks
(DualCodebookQuantizer); a semantic decoder is trained to the frozen teacher's features and
a pixel decoder reconstructs images from semantic ‖ pixel codes, all in one stage."""
import torch

from unimm.models.encoders.semantic import SemanticTeacher, code_projection
from unimm.models.losses import cosine_loss
from unimm.registry import MODELS

from .one_stage import OneStageTokenizer


@MODELS.register_module()
class DualCodebookTokenizer(OneStageTokenizer):
    """Args:
        semantic_encoder: the SigLIP tower (``SemanticEncoder``; TokenFlow keeps it frozen
            and loaded from the teacher: ``init`` and ``frozen`` choose).
        teacher: the frozen target tower, as ``SemHiTok.teacher`` (``SemanticTeacher``: by
            default the encoder's ``pretrained`` folder, one forward when the encoder is
            that frozen tower; not exported).
        pixel_encoder: ``ViTEncoder`` with ``out_dim`` = the quantizer's ``pixel_dim``.
        quantizer: ``DualCodebookQuantizer``.
        semantic_decoder: semantic codes -> teacher features (``SemanticDecoder``).
        pixel_decoder: semantic ‖ pixel codes -> images (``in_dim`` = quantizer ``dim``).
        pixel_loss, adv_weight, adaptive_adv_weight, semantic_weight: as in JointTokenizer.
    """

    def __init__(self, semantic_encoder, pixel_encoder, quantizer, semantic_decoder,
                 pixel_decoder, pixel_loss, semantic_weight=1.0, adv_weight=0.1,
                 adaptive_adv_weight=False, teacher=None):
        super().__init__()
        self.semantic_encoder = MODELS.build(semantic_encoder)
        self.teacher = SemanticTeacher(teacher, semantic_encoder, self.semantic_encoder.frozen)
        self.pixel_encoder = MODELS.build(pixel_encoder)
        self.quantizer = MODELS.build(quantizer)
        semantic_dim, pixel_dim = self.quantizer.split
        if self.pixel_encoder.out_dim != pixel_dim:
            raise ValueError(f'DualCodebookTokenizer: pixel_encoder.out_dim '
                             f'({self.pixel_encoder.out_dim}) must equal the quantizer\'s '
                             f'pixel_dim ({pixel_dim})')
        self.semantic_proj = code_projection(self.semantic_encoder.out_dim, semantic_dim)
        self.semantic_decoder = MODELS.build(semantic_decoder)
        self.pixel_decoder = MODELS.build(pixel_decoder)
        self.pixel_loss = MODELS.build(pixel_loss)
        self.semantic_weight = semantic_weight
        self.adv_weight, self.adaptive_adv_weight = adv_weight, adaptive_adv_weight

    def _quantize(self, images):
        """Semantic encoder features and the dual-codebook output."""
        feats = self.semantic_encoder(images)
        z_sem = self.semantic_proj(feats.to(self.semantic_proj[0].weight.dtype))
        z_pix = self.pixel_encoder(images).to(z_sem.dtype)
        return feats, self.quantizer(torch.cat([z_sem, z_pix], dim=-1))

    def quantize(self, images):
        return self._quantize(images)[1]

    def forward(self, batch, discriminator=None, step=0):
        images = batch['image']
        feats, q = self._quantize(images)
        out = self.pixel_losses(images, self.pixel_decoder(q.quantized), discriminator, step, q,
                                'dual')
        semantic_q = q.quantized[..., :self.quantizer.split[0]]
        out['loss_cosine'] = self.semantic_weight * cosine_loss(
            self.semantic_decoder(semantic_q), self.teacher(images, feats))
        return out
