# Stage 3 at 384 px (see enhance_decoder_vitl.py): encoders and both codebooks frozen, a
# ViT-L/14 EnhanceDecoder (378 px tiled, resized to 384 px) trained on top. init_from: the
# export of registry_configs/sghc_vitb_so400m14_384.py.
_base_ = ['./sghc_vitb_so400m14_384.py']
model = dict(
    stage='enhance',
    init_from='work_dirs/sghc_vitb_so400m14_384/export',
    init_exclude=['pixel_decoder.'],
    pixel_decoder=dict(type='EnhanceDecoder', preset='large'))
train_cfg = dict(max_steps=200000)
