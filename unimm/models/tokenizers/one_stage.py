"""What the one-stage baseline tokenizers (pixel VQ, joint, dual codebook) share: the
token interface on top of one quantizer and one pixel decoder, and the pixel side of
their training losses (reconstruction, codebook, delayed GAN)."""
import torch
from torch import nn

from unimm.models.base import PretrainedMixin
from unimm.models.discriminators.patchgan import adversarial_terms
from unimm.models.encoders.semantic import SemanticEncoder, SemanticTeacher


def portable_config(module, cfg):
    """``cfg`` with every SigLIP tower child of ``module`` replaced by its inline
    architecture and every ``SemanticTeacher`` by its folder-free ``config``, so an
    export loads without the teacher folder (the towers' weights are in the export's
    safetensors; a separate teacher's are not needed outside training)."""
    for name, child in module.named_children():
        if isinstance(child, SemanticEncoder):
            cfg[name] = child.architecture_config()
        elif isinstance(child, SemanticTeacher):
            cfg[name] = child.config
    return cfg


class OneStageTokenizer(PretrainedMixin, nn.Module):
    """Subclasses build ``quantizer``, ``pixel_decoder`` and ``pixel_loss``, set
    ``adv_weight`` / ``adaptive_adv_weight`` and define ``quantize(images) ->
    QuantizerOutput``; ids are the quantizer's, ``decode`` runs the pixel decoder on
    ``quantizer.lookup(ids)`` and ``features`` are the quantised features."""

    @property
    def vocab_size(self):
        """Number of distinct ids ``encode`` can return."""
        return self.quantizer.num_codes

    @property
    def features_dim(self):
        """Width of ``features`` (the quantizer's code dimension)."""
        return self.quantizer.dim

    @property
    def num_tokens(self):
        """Tokens per image: the pixel decoder's patch grid, which ``decode`` inverts."""
        return self.pixel_decoder.num_patches

    @property
    def image_size(self):
        """Side of the square input image (the pixel decoder's output)."""
        height, width = self.pixel_decoder.image_size
        if height != width:
            raise ValueError(f'{type(self).__name__}: image_size is defined for square '
                             f'images, the decoder makes {height}x{width}')
        return height

    @torch.no_grad()
    def encode(self, images):
        """images [B,3,H,W] in [-1,1] -> ids [B, h*w]."""
        return self.quantize(images).ids

    @torch.no_grad()
    def decode(self, ids):
        """ids [B, h*w] -> images [B,3,H,W] in [-1,1]."""
        return self.pixel_decoder(self.quantizer.lookup(ids))

    @torch.no_grad()
    def features(self, images):
        """Quantised features [B, h*w, quantizer.dim] for an LLM."""
        return self.quantize(images).quantized

    @torch.no_grad()
    def reconstruct(self, images):
        return self.decode(self.encode(images))

    def export_config(self):
        return portable_config(self, super().export_config())

    def pixel_losses(self, images, q, discriminator, step, prefix):
        """Decode ``q.quantized``; pixel losses, ``loss_codebook``, the quantizer's stats
        under ``prefix/`` and, once the discriminator has started, ``loss_adv`` and
        ``disc_inputs`` (the adaptive weight balances against the pixel losses only)."""
        recon = self.pixel_decoder(q.quantized)
        out = dict(self.pixel_loss(recon, images))
        out.update(adversarial_terms(
            out, images, recon, discriminator, step, self.adv_weight,
            self.pixel_decoder.last_layer if self.adaptive_adv_weight else None))
        out['loss_codebook'] = q.loss
        out.update({f'{prefix}/{k}': v for k, v in q.stats.items()})
        return out
