# Demo twin of baselines/joint_siglip_l16.py (VILA-U / MUSE-VL joint training) on the
# shapes world: the demo teacher's tower trained jointly under one 3072 x 16 codebook (the
# demo SemHiTok's K*m = 3072 ids), cosine to the frozen teacher + pixel losses. Same data,
# schedule, pixel decoder, losses and discriminator as demo/sghc_shapes.py; one stage, so
# it needs only work_dirs/shapes_siglip/export.
_base_ = ['../sghc_shapes.py']
model = dict(
    _delete_=True,
    type='JointTokenizer',
    encoder=dict(type='SemanticEncoder', pretrained='work_dirs/shapes_siglip/export',
                 init='teacher', frozen=False),
    teacher={{_base_.model.semantic_encoder}},
    quantizer=dict(type='VectorQuantizer', num_codes=3072, dim=16, l2_norm=True, beta=0.25),
    semantic_decoder={{_base_.model.semantic_decoder}},
    pixel_decoder=dict(type='ViTDecoder', image_size=64, patch_size=8, in_dim=16, width=128,
                       depth=4, num_heads=4),
    pixel_loss={{_base_.model.pixel_loss}},
    semantic_weight=1.0,
    adv_weight=0.05)
