# Dual codebook with a shared index, TokenFlow style: the frozen SigLIP-L/16 tower and a
# ViT-B/16 pixel encoder feed a semantic (32-d) and a pixel (32-d) codebook of 16384
# paired entries; ONE argmin over d_sem + pixel_weight * d_pix picks the shared id. A
# semantic decoder (cosine to SigLIP) and the pixel decoder (on semantic || pixel codes)
# train together in a single stage. Everything else is sghc_vitb.py's.
_base_ = ['../sghc_vitb.py']
model = dict(
    _delete_=True,
    type='DualCodebookTokenizer',
    semantic_encoder={{_base_.model.semantic_encoder}},
    pixel_encoder={{_base_.model.pixel_encoder}},
    quantizer=dict(type='DualCodebookQuantizer', num_codes=16384, semantic_dim=32,
                   pixel_dim=32, pixel_weight=1.0, l2_norm=True, beta=0.25),
    semantic_decoder={{_base_.model.semantic_decoder}},
    pixel_decoder={{_base_.model.pixel_decoder}},
    pixel_loss={{_base_.model.pixel_loss}},
    semantic_weight=1.0,
    adv_weight=0.5)
