"""Projectors from vision features to an LLM's embedding space (LLaVA's names)."""
import math
import re

import torch
from torch import nn

from unimm.models.layers.vit_blocks import sincos_2d
from unimm.registry import MODELS


@MODELS.register_module()
class MLPProjector(nn.Sequential):
    """``kind='linear'`` (LLaVA-1) or ``'mlp{N}x_gelu'`` (N linear layers with GELU
    between them; ``mlp2x_gelu`` is LLaVA-1.5's).

    ``pos_dim > 0`` concatenates a fixed ``pos_dim``-wide 2-D sin-cos code of each token's
    place in the (square, raster-order) grid to its features before the first layer. A
    RoPE LLM's values carry no absolute position, and quantised codes hold almost none, so
    without it the LLM must work out where an image token lies from its sequence offset
    alone (docs/understanding.md). 0 (the default) is LLaVA's projector.
    """

    def __init__(self, in_dim, out_dim, kind='mlp2x_gelu', pos_dim=0):
        match = re.fullmatch(r'mlp(\d+)x_gelu', kind)
        if kind != 'linear' and not match:
            raise ValueError(f"MLPProjector.kind must be 'linear' or 'mlp<N>x_gelu', got {kind!r}")
        if pos_dim < 0 or pos_dim % 4:
            raise ValueError(f'MLPProjector.pos_dim must be a non-negative multiple of 4 '
                             f'(a sin and a cos per row and per column frequency), got {pos_dim}')
        depth = 1 if kind == 'linear' else int(match.group(1))
        layers = [nn.Linear(in_dim + pos_dim, out_dim)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        super().__init__(*layers)
        self.in_dim, self.out_dim, self.pos_dim = in_dim, out_dim, pos_dim
        self._codes = {}

    def position_code(self, num_tokens):
        """``[num_tokens, pos_dim]``: the sin-cos code of a square raster of tokens."""
        if num_tokens not in self._codes:
            grid = math.isqrt(num_tokens)
            if grid * grid != num_tokens:
                raise ValueError(f'MLPProjector.pos_dim needs a square grid of image tokens, '
                                 f'got {num_tokens}')
            self._codes[num_tokens] = sincos_2d(self.pos_dim, (grid, grid))
        return self._codes[num_tokens]

    def forward(self, features):
        if self.pos_dim:
            code = self.position_code(features.shape[-2]).to(features)
            features = torch.cat([features, code.expand(*features.shape[:-1], -1)], -1)
        return super().forward(features)
