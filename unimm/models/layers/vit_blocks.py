"""The pieces every ViT of unimm is built from (the pixel encoder, the pixel and semantic
decoders): presets, the patch grid, position embeddings, the block stack, weight init."""
import sys
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def _import_timm_block():
    """timm's ViT block. timm's package init imports wandb, when installed (lmms-eval needs
    it), for a training-summary helper unimm never calls; that import costs every tool
    launch about 2 s, so it is declined while timm loads and allowed again after."""
    declined = 'wandb' not in sys.modules
    if declined:
        sys.modules['wandb'] = None  # `import wandb` raises ImportError, which timm expects
    try:
        from timm.models.vision_transformer import Block
    finally:
        if declined and sys.modules.get('wandb', 0) is None:
            del sys.modules['wandb']
    return Block


Block = _import_timm_block()

PRESETS = {
    'base': dict(width=768, depth=12, num_heads=12),    # ViT-B
    'large': dict(width=1024, depth=24, num_heads=16),  # ViT-L
}
POS_EMBEDS = ('learned', 'sincos')
LayerNorm = partial(nn.LayerNorm, eps=1e-6)


def resolve_preset(owner, preset, width, depth, num_heads):
    """``(width, depth, num_heads)``: from ``preset`` (then all three must be None) or from
    the explicit values, each defaulting to ViT-B's when left at None."""
    given = dict(width=width, depth=depth, num_heads=num_heads)
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f'{owner}.preset must be one of {sorted(PRESETS)}, got {preset!r}')
        clash = [k for k, v in given.items() if v is not None]
        if clash:
            raise ValueError(f'{owner}: preset={preset!r} sets width/depth/num_heads; leave '
                             f'{", ".join(clash)} unset (None) or drop the preset')
        given = PRESETS[preset]
    base = PRESETS['base']
    return tuple(base[k] if given[k] is None else given[k] for k in ('width', 'depth',
                                                                    'num_heads'))


def patch_grid(owner, image_size, patch_size):
    """(H, W) and the (h, w) patch grid, floored as a stride-``patch_size`` convolution
    floors it (SigLIP-so400m/14 at 384 px: 27 x 27, the last 6 rows and columns left over)."""
    size = pair(image_size)
    if any(s < patch_size for s in size):
        raise ValueError(f'{owner}: image_size {image_size} is smaller than patch_size '
                         f'{patch_size}')
    return size, tuple(s // patch_size for s in size)


def pair(size):
    return tuple(size) if isinstance(size, (tuple, list)) else (size, size)


def sincos_2d(dim, grid):
    """MAE's fixed 2-D sin-cos embedding ``[h*w, dim]`` in raster order (half the channels
    encode the row, half the column)."""
    if dim % 4:
        raise ValueError(f'sincos position embeddings need a width divisible by 4, got {dim}')
    h, w = grid
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                             indexing='ij')

    def embed(pos):
        out = np.einsum('m,d->md', pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return torch.from_numpy(np.concatenate([embed(rows), embed(cols)], axis=1)).float()


class PositionEmbedding(nn.Module):
    """Adds a position embedding to ``[B, num_tokens, width]``. ``learned``: one trained
    vector per position. ``sincos``: fixed 2-D sin-cos over the ``grid``, repeated for
    each of the ``num_tokens // (h*w)`` grid-sized segments of a length-concatenated
    sequence, plus a learned per-segment vector (zero-initialised) to tell them apart."""

    def __init__(self, kind, width, grid, num_tokens):
        super().__init__()
        if kind not in POS_EMBEDS:
            raise ValueError(f'pos_embed must be one of {POS_EMBEDS}, got {kind!r}')
        self.kind = kind
        n = grid[0] * grid[1]
        if kind == 'learned':
            self.weight = nn.Parameter(torch.zeros(1, num_tokens, width))
            nn.init.trunc_normal_(self.weight, std=0.02)
            self.segment = None
        else:
            if num_tokens % n:
                raise ValueError(f'sincos position embeddings need num_tokens ({num_tokens}) '
                                 f'to be a multiple of the grid size ({n})')
            segments = num_tokens // n
            self.register_buffer('weight', sincos_2d(width, grid).repeat(segments, 1)[None],
                                 persistent=False)
            self.segment = (nn.Parameter(torch.zeros(segments, 1, width)) if segments > 1
                            else None)

    def forward(self, x):
        pos = self.weight
        if self.segment is not None:
            pos = pos + self.segment.expand(-1, pos.shape[1] // self.segment.shape[0], -1
                                            ).reshape(1, pos.shape[1], -1)
        return x + pos.to(x.dtype)


class BlockStack(nn.Module):
    """``depth`` timm ViT blocks (pre-norm, qkv bias, fused SDPA attention), with optional
    activation checkpointing while training."""

    def __init__(self, width, depth, num_heads, mlp_ratio, grad_checkpointing=False):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                                          norm_layer=LayerNorm) for _ in range(depth))
        self.grad_checkpointing = grad_checkpointing

    def forward(self, x):
        ckpt = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        for blk in self.blocks:
            x = checkpoint(blk, x, use_reentrant=False) if ckpt else blk(x)
        return x


def init_vit_weights(module):
    """timm / MAE ViT init: truncated-normal linears, xavier patch embedding, unit norms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
