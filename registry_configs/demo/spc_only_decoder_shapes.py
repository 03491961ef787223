# The paper's Fig. 3 control: a pixel decoder on the frozen SPC codes alone (no texture
# branch), trained with the same budget and losses as demo/sghc_shapes.py.
_base_ = ['./sghc_shapes.py']
model = dict(
    _delete_=True,
    type='SemHiTok',
    stage='sghc',
    fusion='semantic',
    init_from='work_dirs/spc_shapes/export',
    semantic_encoder={{_base_.model.semantic_encoder}},
    semantic_quantizer={{_base_.model.semantic_quantizer}},
    semantic_decoder={{_base_.model.semantic_decoder}},
    pixel_decoder=dict(type='ViTDecoder', image_size=64, patch_size=8, in_dim=16, width=128,
                       depth=4, num_heads=4),
    pixel_loss={{_base_.model.pixel_loss}},
    adv_weight=0.05)
