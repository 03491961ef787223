# GPU reference, textured world, stage 2: SGHC at 128 px (16x16 tokens, m = 12), L1 + L2.
_base_ = ['./spc_textured128.py']
model = dict(
    stage='sghc',
    init_from='work_dirs/spc_textured128/export',
    pixel_encoder=dict(type='ViTEncoder', image_size=128, patch_size=8, width=128, depth=4,
                       num_heads=4, out_dim=16),
    pixel_quantizer=dict(type='HierarchicalCodebook', num_semantic_codes=1024, sub_codes=12,
                         dim=16, update='loss'),
    pixel_decoder=dict(type='ViTDecoder', image_size=128, patch_size=8, in_dim=32, width=192,
                       depth=6, num_heads=6),
    pixel_loss=dict(type='PixelReconstructionLoss', l1_weight=1.0, l2_weight=1.0,
                    perceptual_weight=0.0, lpips=None))
optim_wrapper = dict(optimizer=dict(lr=1e-3, betas=(0.5, 0.9)))
train_dataloader = dict(batch_size=64, num_workers=6)
param_scheduler = dict(warmup_steps=100)
train_cfg = dict(max_steps=4000, log_interval=100)
checkpoint = dict(interval=1000)
