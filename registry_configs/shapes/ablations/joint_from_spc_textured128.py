# Ablation (Tab. 4, row 3: "+ joint texture training", MUSE-VL's setup), textured world:
# encoder, projection, 1024 x 16 codebook and semantic decoder start from the trained SPC
# (spc_textured128's export); texture is then trained INTO them, cosine to the frozen
# teacher + pixel losses together, the encoder unfrozen. Dead codes restart as in SGHC
# (usage below 0.1 x the mean, EMA 0.99, from the SPC's usage). Pixel decoder, losses,
# data and budget: sghc_textured128's (4000 steps, batch 64, lr 1e-3, L1 + L2).
_base_ = ['../sghc_textured128.py']
_teacher = 'work_dirs/teacher_textured128/export'
model = dict(
    _delete_=True,
    type='JointTokenizer',
    init_from='work_dirs/spc_textured128/export',
    encoder=dict(type='SemanticEncoder', pretrained=_teacher, init='teacher', frozen=False),
    teacher=dict(type='SemanticEncoder', pretrained=_teacher),
    quantizer=dict(type='VectorQuantizer', num_codes=1024, dim=16, l2_norm=True, beta=0.25,
                   dead_code_threshold=0.1, decay=0.99),
    semantic_decoder={{_base_.model.semantic_decoder}},
    pixel_decoder=dict(type='ViTDecoder', image_size=128, patch_size=8, in_dim=16, width=192,
                       depth=6, num_heads=6),
    pixel_loss={{_base_.model.pixel_loss}},
    semantic_weight=1.0)
