"""Janus-style dual encoders: understanding and generation use different visual encoders.
``features`` are the continuous patch features of the (frozen) SigLIP tower; ``encode``,
``decode`` and training are those of a pixel VQ tokenizer (LlamaGen style)."""
import torch
from torch import nn

from unimm.models.base import PretrainedMixin
from unimm.registry import MODELS

from .one_stage import portable_config


@MODELS.register_module()
class DualEncoderTokenizer(PretrainedMixin, nn.Module):
    """Args:
        understanding: the frozen SigLIP tower (``SemanticEncoder``) whose continuous
            features an LLM reads.
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

    @property
    def vocab_size(self):
        return self.generation.vocab_size

    @property
    def features_dim(self):
        """Width of ``features`` (the SigLIP tower's)."""
        return self.understanding.out_dim

    @property
    def num_tokens(self):
        """Tokens per image of ``features`` (the SigLIP tower's grid)."""
        return self.understanding.num_tokens

    @property
    def image_size(self):
        return self.understanding.image_size

    @torch.no_grad()
    def encode(self, images):
        return self.generation.encode(images)

    @torch.no_grad()
    def decode(self, ids):
        return self.generation.decode(ids)

    @torch.no_grad()
    def reconstruct(self, images):
        return self.generation.reconstruct(images)

    @torch.no_grad()
    def features(self, images):
        """Continuous SigLIP patch features [B, N, width] (no quantisation)."""
        return self.understanding(images)

    def forward(self, batch, discriminator=None, step=0):
        return self.generation(batch, discriminator=discriminator, step=step)

    def export_config(self):
        cfg = portable_config(self, super().export_config())
        cfg['generation'] = self.generation.export_config()
        return cfg
