"""What the one-stage baseline tokenizers (pixel VQ, joint, dual codebook) share: the
token interface on top of one quantizer and one pixel decoder."""
import torch

from .base import ImageTokenizer


class OneStageTokenizer(ImageTokenizer):
    """Subclasses build ``quantizer``, ``pixel_decoder`` and ``pixel_loss``, set
    ``adv_weight`` / ``adaptive_adv_weight`` and define ``quantize(images) ->
    QuantizerOutput``; ids are the quantizer's, ``decode`` runs the pixel decoder on
    ``quantizer.lookup(ids)`` and ``features`` are the quantised features."""

    @property
    def vocab_size(self):
        return self.quantizer.num_codes

    @property
    def features_dim(self):
        """The quantizer's code dimension."""
        return self.quantizer.dim

    @property
    def num_tokens(self):
        """The pixel decoder's patch grid, which ``decode`` inverts."""
        return self.pixel_decoder.num_patches

    @property
    def image_size(self):
        """The pixel decoder's output side."""
        height, width = self.pixel_decoder.image_size
        if height != width:
            raise ValueError(f'{type(self).__name__}: image_size is defined for square '
                             f'images, the decoder makes {height}x{width}')
        return height

    @torch.no_grad()
    def encode(self, images):
        return self.quantize(images).ids

    @torch.no_grad()
    def decode(self, ids):
        return self.pixel_decoder(self.quantizer.lookup(ids))

    @torch.no_grad()
    def features(self, images):
        """Quantised features [B, h*w, quantizer.dim]."""
        return self.quantize(images).quantized
