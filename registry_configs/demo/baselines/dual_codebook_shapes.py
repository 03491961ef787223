# Demo twin of baselines/dual_codebook_siglip_l16.py (TokenFlow): the frozen demo teacher
# and demo/sghc_shapes.py's pixel encoder, 3072 paired 16-d semantic / 16-d pixel codes
# under one shared index, semantic decoder + pixel decoder trained together in one stage.
_base_ = ['../sghc_shapes.py']
model = dict(
    _delete_=True,
    type='DualCodebookTokenizer',
    semantic_encoder={{_base_.model.semantic_encoder}},
    pixel_encoder={{_base_.model.pixel_encoder}},
    quantizer=dict(type='DualCodebookQuantizer', num_codes=3072, semantic_dim=16,
                   pixel_dim=16, pixel_weight=1.0, l2_norm=True, beta=0.25),
    semantic_decoder={{_base_.model.semantic_decoder}},
    pixel_decoder={{_base_.model.pixel_decoder}},
    pixel_loss={{_base_.model.pixel_loss}},
    semantic_weight=1.0,
    adv_weight=0.05)
