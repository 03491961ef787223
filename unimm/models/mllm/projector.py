"""Projectors from vision features to an LLM's embedding space (LLaVA's names)."""
import re

from torch import nn

from unimm.registry import MODELS


@MODELS.register_module()
class MLPProjector(nn.Sequential):
    """``kind='linear'`` (LLaVA-1) or ``'mlp{N}x_gelu'`` (N linear layers with GELU
    between them; ``mlp2x_gelu`` is LLaVA-1.5's)."""

    def __init__(self, in_dim, out_dim, kind='mlp2x_gelu'):
        match = re.fullmatch(r'mlp(\d+)x_gelu', kind)
        if kind != 'linear' and not match:
            raise ValueError(f"MLPProjector.kind must be 'linear' or 'mlp<N>x_gelu', got {kind!r}")
        depth = 1 if kind == 'linear' else int(match.group(1))
        layers = [nn.Linear(in_dim, out_dim)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim
