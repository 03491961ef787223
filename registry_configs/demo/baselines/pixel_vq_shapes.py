# Demo twin of baselines/pixel_vq_vitb.py (LlamaGen-style pixel-only VQ): demo/sghc_shapes.py's
# ViT pixel encoder / decoder around a learnable, l2-normalised 3072 x 8 codebook (as many
# ids as the demo SemHiTok's K*m); no teacher.
_base_ = ['../sghc_shapes.py']
model = dict(
    _delete_=True,
    type='PixelVQTokenizer',
    pixel_encoder=dict(type='ViTEncoder', image_size=64, patch_size=8, width=96, depth=3,
                       num_heads=4, out_dim=8),
    quantizer=dict(type='VectorQuantizer', num_codes=3072, dim=8, l2_norm=True, beta=0.25),
    pixel_decoder=dict(type='ViTDecoder', image_size=64, patch_size=8, in_dim=8, width=128,
                       depth=4, num_heads=4),
    pixel_loss={{_base_.model.pixel_loss}},
    adv_weight=0.05)
