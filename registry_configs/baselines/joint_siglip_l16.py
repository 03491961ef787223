# Joint training, VILA-U / MUSE-VL style: ONE codebook (16384 x 32, learnable,
# l2-normalised) on a SigLIP-L/16 encoder initialised from the teacher and trained, with
# the semantic loss (cosine of a semantic decoder's output to the frozen teacher's
# features) and the pixel losses optimised together in a single stage. Everything else
# (data, schedule, pixel decoder, losses, discriminator) is sghc_vitb.py's.
_base_ = ['../sghc_vitb.py']
model = dict(
    _delete_=True,
    type='JointTokenizer',
    encoder=dict(type='SemanticEncoder', pretrained='checkpoints/siglip-large-patch16-256',
                 init='teacher', frozen=False),
    teacher={{_base_.model.semantic_encoder}},
    quantizer=dict(type='VectorQuantizer', num_codes=16384, dim=32, l2_norm=True, beta=0.25),
    semantic_decoder={{_base_.model.semantic_decoder}},
    pixel_decoder=dict(type='ViTDecoder', image_size=256, patch_size=16, preset='base',
                       in_dim=32),
    pixel_loss={{_base_.model.pixel_loss}},
    semantic_weight=1.0,
    adv_weight=0.5)
