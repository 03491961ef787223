"""The image tokenizer protocol: what every MLLM, evaluator and tool may read of a tokenizer
(images <-> ids, features for understanding, the id space and its optional factorisation),
and what every pixel tokenizer's training shares (the pixel side of its losses, an export
that loads without the teacher folder)."""
from abc import ABCMeta, abstractmethod
from typing import NamedTuple

import torch
from torch import nn

from unimm.models.base import PretrainedMixin
from unimm.models.discriminators.patchgan import adversarial_terms
from unimm.models.encoders.semantic import SemanticEncoder, SemanticTeacher


class IdFactorization(NamedTuple):
    """Ids that factorise as ``id = semantic * sub_codes + sub`` (SemHiTok's global id
    i * m + j): ``num_semantic`` coarse codes, each owning ``sub_codes`` ids."""
    num_semantic: int
    sub_codes: int

    def split(self, ids):
        """ids -> (semantic, sub) ids, each of ids' shape."""
        return ids // self.sub_codes, ids % self.sub_codes

    def join(self, semantic, sub):
        """(semantic, sub) ids -> ids."""
        return semantic * self.sub_codes + sub


class ImageTokenizer(PretrainedMixin, nn.Module, metaclass=ABCMeta):
    """A discrete image tokenizer: images [B, 3, image_size, image_size] in [-1, 1] <-> ids
    [B, num_tokens] in [0, vocab_size) (raster order), and ``features`` [B, num_tokens,
    features_dim] for an LLM's understanding path. ``factorization`` is an
    `IdFactorization` when ids are (semantic, sub-code) pairs (SemHiTok), else None.
    ``decode(encode(x))`` is ``reconstruct(x)``; ``encode(decode(ids))`` is not promised
    to give ``ids`` back (the encoder is learned, not the decoder's inverse).

    The pixel training helpers read ``pixel_loss``, ``pixel_decoder``, ``adv_weight`` and
    ``adaptive_adv_weight``, which pixel tokenizers set."""

    factorization = None

    @property
    @abstractmethod
    def vocab_size(self):
        """Number of distinct ids ``encode`` can return."""

    @property
    @abstractmethod
    def num_tokens(self):
        """Ids per image (tokens of ``features`` too)."""

    @property
    @abstractmethod
    def image_size(self):
        """Side of the square images ``encode`` takes and ``decode`` makes."""

    @property
    @abstractmethod
    def features_dim(self):
        """Width of ``features``."""

    @abstractmethod
    def encode(self, images):
        """images [B,3,H,W] in [-1,1] -> ids [B, num_tokens] (long)."""

    @abstractmethod
    def decode(self, ids):
        """ids [B, num_tokens] -> images [B,3,H,W] in [-1,1]."""

    @abstractmethod
    def features(self, images):
        """images -> [B, num_tokens, features_dim]: what an understanding LLM reads."""

    @torch.no_grad()
    def reconstruct(self, images):
        """decode(encode(images))."""
        return self.decode(self.encode(images))

    def semantic_ids(self, ids):
        """The semantic part of each id under ``factorization`` (the ids themselves
        without one): what a stage-1 SemHiTok on the same images would return."""
        return ids if self.factorization is None else self.factorization.split(ids)[0]

    def export_config(self):
        """The build config with every SigLIP tower child replaced by its inline
        architecture and every ``SemanticTeacher`` by its folder-free ``config``: the
        export loads without the teacher folder (the towers' weights are in the export's
        safetensors; a separate teacher is not needed outside training)."""
        cfg = super().export_config()
        for name, child in self.named_children():
            if isinstance(child, SemanticEncoder):
                cfg[name] = child.architecture_config()
            elif isinstance(child, SemanticTeacher):
                cfg[name] = child.config
        return cfg

    def pixel_losses(self, images, recon, discriminator, step, codebook=None, prefix=None):
        """Training losses of ``recon`` against ``images``: the pixel losses; once the
        discriminator has started, ``loss_adv`` (its adaptive weight balanced against the
        pixel losses) and ``disc_inputs``; with ``codebook`` (the output of the quantizer
        being trained) ``loss_codebook`` and its statistics under ``prefix/``."""
        out = dict(self.pixel_loss(recon, images))
        out.update(adversarial_terms(
            out, images, recon, discriminator, step, self.adv_weight,
            self.pixel_decoder.last_layer if self.adaptive_adv_weight else None))
        if codebook is not None:
            out['loss_codebook'] = codebook.loss
            out.update({f'{prefix}/{k}': v for k, v in codebook.stats.items()})
        return out
