"""Janus-style dual encoders: understanding and generation use different visual encoders.
``features`` are the continuous patch features of the (frozen) SigLIP tower; ``encode``,
``decode`` and training are those of a pixel VQ tokenizer (LlamaGen style)."""
import torch

from unimm.registry import MODELS

from .base import ImageTokenizer


@MODELS.register_module()
class DualEncoderTokenizer(ImageTokenizer):
    """Args:
        understanding: the frozen SigLIP tower (``SemanticEncoder``) whose continuous
            features an LLM reads; its image size and token grid are the generation
            tokenizer's (one ``image_size`` and ``num_tokens`` for both paths, as in Janus).
        generation: the discrete tokenizer of the generation path (``PixelVQTokenizer``);
            the only part that trains.
    """

    def __init__(self, understanding, generation):
        super().__init__()
        self.understanding = MODELS.build(understanding)
        if not self.understanding.frozen:
            raise ValueError('DualEncoderTokenizer.understanding must be frozen (Janus keeps '
                             'its SigLIP fixed while the VQ trains)')
        self.generation = MODELS.build(generation)
        tower = (self.understanding.image_size, self.understanding.num_tokens)
        vq = (self.generation.image_size, self.generation.num_tokens)
        if tower != vq:
            raise ValueError(f'DualEncoderTokenizer: the understanding tower reads {tower[0]} px '
                             f'images as {tower[1]} tokens, the generation tokenizer {vq[0]} px '
                             f'as {vq[1]}: they must agree')

    @property
    def vocab_size(self):
        return self.generation.vocab_size

    @property
    def factorization(self):
        return self.generation.factorization

    @property
    def features_dim(self):
        """The SigLIP tower's width."""
        return self.understanding.out_dim

    @property
    def num_tokens(self):
        return self.generation.num_tokens

    @property
    def image_size(self):
        return self.generation.image_size

    @torch.no_grad()
    def encode(self, images):
        return self.generation.encode(images)

    @torch.no_grad()
    def decode(self, ids):
        return self.generation.decode(ids)

    @torch.no_grad()
    def features(self, images):
        """Continuous SigLIP patch features [B, N, width] (no quantisation)."""
        return self.understanding(images)

    def forward(self, batch, discriminator=None, step=0):
        return self.generation(batch, discriminator=discriminator, step=step)

    def export_config(self):
        cfg = super().export_config()
        cfg['generation'] = self.generation.export_config()
        return cfg
