# Stage 2 of the demo tokenizer: SGHC pixel sub-codebooks (m = 12) under the frozen SPC,
# a ViT pixel encoder/decoder, L1 + L2 + PatchGAN. (The paper's recipe adds LPIPS:
# registry_configs/sghc_vitb.py; VGG16 on a 2-core CPU would make this demo ~10x slower.)
_base_ = ['./spc_shapes.py']
model = dict(
    stage='sghc',
    init_from='work_dirs/spc_shapes/export',
    pixel_encoder=dict(type='ViTEncoder', image_size=64, patch_size=8, width=96, depth=3,
                       num_heads=4, out_dim=16),
    pixel_quantizer=dict(type='HierarchicalCodebook', num_semantic_codes=256, sub_codes=12,
                         dim=16, update='loss'),
    pixel_decoder=dict(type='ViTDecoder', image_size=64, patch_size=8, in_dim=32, width=128,
                       depth=4, num_heads=4),
    pixel_loss=dict(type='PixelReconstructionLoss', l1_weight=1.0, l2_weight=1.0,
                    perceptual_weight=0.0, lpips=None),
    adv_weight=0.05)
# GroupNorm: DeepSpeed keeps buffers fp32 under bf16, which BatchNorm's running stats reject
discriminator = dict(type='PatchGANDiscriminator', base_channels=32, num_layers=2, norm='group',
                     start_step=400)
disc_optim_wrapper = dict(optimizer=dict(type='AdamW', lr=2e-4, betas=(0.5, 0.9),
                                         weight_decay=0.0))
optim_wrapper = dict(optimizer=dict(lr=1e-3, betas=(0.5, 0.9)))
train_cfg = dict(max_steps=600)
checkpoint = dict(interval=300)
