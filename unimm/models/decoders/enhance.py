"""The enhance decoder: SemHiTok's stage 3 (the paper's "enhanced pixel decoder"), a larger
pixel decoder trained from scratch on the frozen codes of stage 2."""
from unimm.models.decoders.vit import ViTDecoder
from unimm.registry import MODELS


@MODELS.register_module()
class EnhanceDecoder(ViTDecoder):
    """A ``ViTDecoder`` in the stage-3 role: it reads the same fused codes ``[B, N, in_dim]``
    as the stage-2 decoder it replaces (same ``image_size``, ``patch_size``, ``in_dim``,
    ``num_tokens``) and is ViT-L (``preset='large'``) unless a preset or explicit
    ``width`` / ``depth`` / ``num_heads`` say otherwise. SemHiTok with ``stage='enhance'``
    trains it alone, everything else frozen; ``init_exclude=['pixel_decoder.']`` keeps the
    stage-2 decoder's weights out of it."""

    def __init__(self, image_size=256, patch_size=16, in_dim=64, width=None, depth=None,
                 num_heads=None, mlp_ratio=4.0, preset=None, num_tokens=None,
                 pos_embed='learned', grad_checkpointing=False):
        if preset is None and width is None and depth is None and num_heads is None:
            preset = 'large'
        super().__init__(image_size, patch_size, in_dim, width, depth, num_heads, mlp_ratio,
                         preset, num_tokens, pos_embed, grad_checkpointing)
