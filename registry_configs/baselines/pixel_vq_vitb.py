# Pixel-only VQ, LlamaGen style: ViT-B/16 pixel encoder -> a learnable, l2-normalised
# 16384 x 8 codebook (codebook + commitment loss) -> ViT-B/16 pixel decoder; no
# text-aligned teacher anywhere. (LlamaGen's own VQ-16 is convolutional; the ViT pair is
# SemHiTok's pixel branch, so the comparison isolates the codebook.) Everything else is
# sghc_vitb.py's.
_base_ = ['../sghc_vitb.py']
model = dict(
    _delete_=True,
    type='PixelVQTokenizer',
    pixel_encoder=dict(type='ViTEncoder', image_size=256, patch_size=16, preset='base',
                       out_dim=8),
    quantizer=dict(type='VectorQuantizer', num_codes=16384, dim=8, l2_norm=True, beta=0.25),
    pixel_decoder=dict(type='ViTDecoder', image_size=256, patch_size=16, preset='base',
                       in_dim=8),
    pixel_loss={{_base_.model.pixel_loss}},
    adv_weight=0.5)
