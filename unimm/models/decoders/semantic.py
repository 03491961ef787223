"""The semantic decoder: quantised codes ``[B, N, in_dim]`` -> the teacher's feature space
``[B, N, out_dim]`` (SPC, stage 1), trained with a cosine distance to the teacher."""
from torch import nn

from unimm.models.layers.vit_blocks import (BlockStack, LayerNorm, PositionEmbedding,
                                            init_vit_weights)
from unimm.models.losses import cosine_loss
from unimm.registry import MODELS


@MODELS.register_module()
class SemanticDecoder(nn.Module):
    """Linear ``in_dim -> width`` + learned position embedding -> ``depth`` timm blocks ->
    LayerNorm -> linear to ``out_dim`` (VQKD / BEiT v2's decoder; the paper uses 3
    layers). Tokens keep their raster order; ``cosine_loss`` is the matching loss (also
    a module-level function)."""

    def __init__(self, in_dim=32, width=1024, depth=3, num_heads=16, out_dim=1024,
                 num_tokens=256, mlp_ratio=4.0, grad_checkpointing=False):
        super().__init__()
        self.in_dim, self.width, self.out_dim, self.num_tokens = in_dim, width, out_dim, num_tokens
        self.embed = nn.Linear(in_dim, width)
        self.pos_embed = PositionEmbedding('learned', width, (num_tokens, 1), num_tokens)
        self.blocks = BlockStack(width, depth, num_heads, mlp_ratio, grad_checkpointing)
        self.norm = LayerNorm(width)
        self.head = nn.Linear(width, out_dim)
        self.apply(init_vit_weights)

    cosine_loss = staticmethod(cosine_loss)

    def forward(self, quantized):
        if quantized.shape[1] != self.num_tokens:
            raise ValueError(f'SemanticDecoder expects {self.num_tokens} tokens, got '
                             f'{quantized.shape[1]}')
        x = self.pos_embed(self.embed(quantized.to(self.embed.weight.dtype)))
        return self.head(self.norm(self.blocks(x)))
