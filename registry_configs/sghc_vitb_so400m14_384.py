# Stage 2 at 384 px (see sghc_vitb.py): SGHC under the frozen SPC of
# registry_configs/spc_siglip_so400m14_384.py, 729 tokens. 384 is no multiple of 14, so the
# pixel branch works at 27 x 14 = 378 px: the ViT-B/14 pixel encoder resizes the 384 px
# image to 378 px (bilinear, antialiased; remainder='resize': every pixel reaches a token,
# where SigLIP's 'drop' would leave the last 6 rows and columns out) and the pixel decoder
# tiles 378 px and resizes it to 384 px, where the losses compare it with the input.
_base_ = ['./sghc_vitb.py']
model = dict(
    init_from='work_dirs/spc_siglip_so400m14_384/export',
    semantic_encoder=dict(pretrained='checkpoints/siglip-so400m-patch14-384'),
    semantic_decoder=dict(width=1152, num_heads=16, out_dim=1152, num_tokens=729),
    pixel_encoder=dict(image_size=384, patch_size=14, remainder='resize'),
    pixel_decoder=dict(image_size=384, patch_size=14))
train_dataloader = dict(dataset=dict(transform=dict(size=384)))
test_cfg = dict(recon=dict(dataset=dict(transform=dict(size=384))))
