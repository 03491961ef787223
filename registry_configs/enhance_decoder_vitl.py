# Stage 3 (the enhance decoder): encoders and both codebooks frozen, a ViT-L/16
# EnhanceDecoder trained on top. init_from: the export of registry_configs/sghc_vitb.py.
_base_ = ['./sghc_vitb.py']
model = dict(
    stage='enhance',
    init_from='work_dirs/sghc_vitb/export',
    init_exclude=['pixel_decoder.'],
    pixel_decoder=dict(type='EnhanceDecoder', preset='large'))
train_cfg = dict(max_steps=200000)
