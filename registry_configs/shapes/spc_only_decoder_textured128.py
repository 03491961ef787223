# GPU reference, textured world: the SPC-only control (the paper's Fig. 3), same decoder,
# budget and losses as sghc_textured128.py, no texture branch.
_base_ = ['./sghc_textured128.py']
model = dict(
    _delete_=True,
    type='SemHiTok',
    stage='sghc',
    fusion='semantic',
    init_from='work_dirs/spc_textured128/export',
    semantic_encoder={{_base_.model.semantic_encoder}},
    semantic_quantizer={{_base_.model.semantic_quantizer}},
    semantic_decoder={{_base_.model.semantic_decoder}},
    pixel_decoder=dict(type='ViTDecoder', image_size=128, patch_size=8, in_dim=16, width=192,
                       depth=6, num_heads=6),
    pixel_loss={{_base_.model.pixel_loss}})
