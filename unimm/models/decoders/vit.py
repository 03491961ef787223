"""The pixel decoder: quantised codes ``[B, N, in_dim]`` -> images ``[B, 3, H, W]`` in the
``[-1, 1]`` space (no final tanh), a plain ViT with a per-patch linear head."""
import torch
from torch import nn
from torch.nn import functional as F

from unimm.models.layers.vit_blocks import (BlockStack, LayerNorm, PositionEmbedding,
                                            init_vit_weights, patch_grid, resolve_preset)
from unimm.registry import MODELS


@MODELS.register_module()
class ViTDecoder(nn.Module):
    """Linear ``in_dim -> width`` + position embedding -> timm blocks -> LayerNorm ->
    linear to ``patch_size * patch_size * 3`` -> unpatchify.

    Token layout: token ``k`` of the last ``N = (H/p)*(W/p)`` outputs becomes the patch at
    raster position ``k`` (row ``k // (W/p)``, column ``k % (W/p)``); its head output is
    read as ``(p, p, 3)`` (pixel row, pixel column, channel), MAE's convention.

    Length-concat fusion: ``num_tokens`` (default ``N``) may be larger than ``N``. The
    decoder then takes ``[B, num_tokens, in_dim]``, attends over all of them and decodes
    the LAST ``N`` outputs; the leading ``num_tokens - N`` act as a prefix the image
    tokens read from (e.g. ``cat([semantic, texture], dim=1)`` with ``num_tokens = 2N``:
    put the stream the pixels should stay aligned with last). Every position has its own
    embedding, so the two streams are told apart (``pos_embed='sincos'`` adds a learned
    per-segment vector for that and then needs ``num_tokens`` to be a multiple of ``N``).

    ``preset='base'|'large'`` as for ``ViTEncoder``; ``last_layer`` is the head's weight,
    for VQGAN's adaptive GAN weight.

    An ``image_size`` that is not a multiple of ``patch_size`` gets the floored grid: the
    patches tile ``grid * patch_size`` pixels, resized bilinearly to ``image_size`` (the
    inverse of ``ViTEncoder(remainder='resize')``; 27 x 14 = 378 -> 384 px).
    """

    def __init__(self, image_size=256, patch_size=16, in_dim=64, width=None, depth=None,
                 num_heads=None, mlp_ratio=4.0, preset=None, num_tokens=None,
                 pos_embed='learned', grad_checkpointing=False):
        super().__init__()
        width, depth, num_heads = resolve_preset('ViTDecoder', preset, width, depth, num_heads)
        self.image_size, self.grid_size = patch_grid('ViTDecoder', image_size, patch_size)
        self.patch_size = patch_size
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.num_tokens = self.num_patches if num_tokens is None else num_tokens
        if self.num_tokens < self.num_patches:
            raise ValueError(f'ViTDecoder: num_tokens ({self.num_tokens}) must be at least the '
                             f'number of patches ({self.num_patches})')
        self.in_dim, self.width, self.depth, self.num_heads = in_dim, width, depth, num_heads
        self.embed = nn.Linear(in_dim, width)
        self.pos_embed = PositionEmbedding(pos_embed, width, self.grid_size, self.num_tokens)
        self.blocks = BlockStack(width, depth, num_heads, mlp_ratio, grad_checkpointing)
        self.norm = LayerNorm(width)
        self.head = nn.Linear(width, patch_size * patch_size * 3)
        self.apply(init_vit_weights)

    @property
    def last_layer(self):
        return self.head.weight

    def unpatchify(self, x):
        """``[B, N, p*p*3]`` -> ``[B, 3, H, W]`` (see the class doc for the layout)."""
        (h, w), p = self.grid_size, self.patch_size
        x = x.reshape(x.shape[0], h, w, p, p, 3)
        return torch.einsum('bhwpqc->bchpwq', x).reshape(x.shape[0], 3, h * p, w * p)

    def forward(self, quantized):
        if quantized.shape[1] != self.num_tokens:
            raise ValueError(f'ViTDecoder expects {self.num_tokens} tokens, got '
                             f'{quantized.shape[1]}')
        x = self.pos_embed(self.embed(quantized.to(self.embed.weight.dtype)))
        x = self.blocks(x)[:, -self.num_patches:]
        images = self.unpatchify(self.head(self.norm(x)))
        if tuple(images.shape[-2:]) != self.image_size:
            images = F.interpolate(images, size=self.image_size, mode='bilinear',
                                   align_corners=False)
        return images
