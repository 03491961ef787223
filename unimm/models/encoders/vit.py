"""The pixel encoder: a plain ViT (timm ``Block``s, fused SDPA attention) from images to
low-dimensional per-patch features ``[B, N, out_dim]`` in raster order, ready for a
quantizer. Its blocks, presets and position embeddings are the ViT decoders' too
(unimm/models/layers/vit_blocks.py)."""
from torch import nn
from torch.nn import functional as F

from unimm.models.layers.vit_blocks import (BlockStack, LayerNorm, PositionEmbedding,
                                            init_vit_weights, patch_grid, resolve_preset)
from unimm.registry import MODELS

REMAINDERS = ('drop', 'resize')


@MODELS.register_module()
class ViTEncoder(nn.Module):
    """images ``[B, 3, H, W]`` -> ``[B, (H/p)*(W/p), out_dim]`` in raster order.

    Patch-embedding conv -> position embedding -> timm blocks -> LayerNorm -> linear to
    ``out_dim`` (the low code dimension a quantizer works in, e.g. 32). No CLS token.
    ``preset='base'|'large'`` gives ViT-B (768/12/12) or ViT-L (1024/24/16); with a preset
    ``width``/``depth``/``num_heads`` must stay None, without one each defaults to ViT-B's.
    Inputs must have the configured ``image_size``.

    An ``image_size`` that is not a multiple of ``patch_size`` gets the floored grid.
    ``remainder='drop'`` leaves the last ``image_size % patch_size`` rows and columns out,
    as SigLIP's stride-p patch convolution does (the pixels those never see);
    ``remainder='resize'`` first resizes the image bilinearly to ``grid * patch_size``, so
    every pixel reaches a token (the pixel branch at 384 px with 14 px patches: 378 px).
    """

    def __init__(self, image_size=256, patch_size=16, width=None, depth=None, num_heads=None,
                 mlp_ratio=4.0, out_dim=32, preset=None, pos_embed='learned',
                 grad_checkpointing=False, remainder='drop'):
        super().__init__()
        width, depth, num_heads = resolve_preset('ViTEncoder', preset, width, depth, num_heads)
        if remainder not in REMAINDERS:
            raise ValueError(f'ViTEncoder.remainder must be one of {REMAINDERS}, got '
                             f'{remainder!r}')
        self.image_size, self._grid = patch_grid('ViTEncoder', image_size, patch_size)
        self.remainder = remainder
        self.patch_size = patch_size
        self.width, self.depth, self.num_heads = width, depth, num_heads
        self._out_dim = out_dim
        self.patch_embed = nn.Conv2d(3, width, patch_size, stride=patch_size)
        self.pos_embed = PositionEmbedding(pos_embed, width, self._grid, self.num_tokens)
        self.blocks = BlockStack(width, depth, num_heads, mlp_ratio, grad_checkpointing)
        self.norm = LayerNorm(width)
        self.proj = nn.Linear(width, out_dim)
        self.apply(init_vit_weights)

    @property
    def grid_size(self):
        return self._grid

    @property
    def num_tokens(self):
        return self._grid[0] * self._grid[1]

    @property
    def out_dim(self):
        return self._out_dim

    def forward(self, images):
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(f'ViTEncoder expects {self.image_size} images, got '
                             f'{tuple(images.shape[-2:])}')
        images = images.to(self.patch_embed.weight.dtype)
        covered = tuple(g * self.patch_size for g in self._grid)
        if self.remainder == 'resize' and covered != self.image_size:
            images = F.interpolate(images, size=covered, mode='bilinear', align_corners=False,
                                   antialias=True)
        x = self.patch_embed(images)
        x = self.pos_embed(x.flatten(2).transpose(1, 2))
        return self.proj(self.norm(self.blocks(x)))
