# Stage 2 ("pixel reconstruction enablement"): SGHC sub-codebooks (m = 12) under the frozen
# SPC, ViT-B/16 pixel encoder and decoder, L2 + LPIPS + PatchGAN (LlamaGen's weights).
# init_from: the export of registry_configs/spc_siglip_l16.py. LPIPS weights: see
# docs/tokenizer.md (converted once, offline).
_base_ = ['./spc_siglip_l16.py']
model = dict(
    stage='sghc',
    init_from='work_dirs/spc_siglip_l16/export',
    pixel_encoder=dict(type='ViTEncoder', image_size=256, patch_size=16, preset='base',
                       out_dim=32),
    # EMA sub-codebook: restarted sub-codes survive bf16 / ZeRO (a loss-mode table's
    # restarts would be overwritten by the optimizer's fp32 master copy)
    pixel_quantizer=dict(type='HierarchicalCodebook', num_semantic_codes=16384, sub_codes=12,
                         dim=32, l2_norm=True, update='ema', beta=0.25),
    pixel_decoder=dict(type='ViTDecoder', image_size=256, patch_size=16, preset='base',
                       in_dim=64),
    pixel_loss=dict(type='PixelReconstructionLoss', l1_weight=0.0, l2_weight=1.0,
                    perceptual_weight=1.0, lpips=dict(type='LPIPSLoss')),
    adv_weight=0.5)
# GroupNorm: DeepSpeed keeps buffers fp32 under bf16, which BatchNorm's running stats reject
discriminator = dict(type='PatchGANDiscriminator', base_channels=64, num_layers=3,
                     norm='group', start_step=20000)
optim_wrapper = dict(optimizer=dict(lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05),
                     clip_grad=1.0)
disc_optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.95),
                                         weight_decay=0.05))
param_scheduler = dict(type='Constant', warmup_steps=1000)
train_cfg = dict(max_steps=400000)
# torch.compile the encoders, decoder, LPIPS and discriminator (quantizers stay eager), their
# kernels replayed as CUDA graphs (mode='reduce-overhead': the step is otherwise bound by
# the host's kernel launches): docs/performance.md; compile=None runs eagerly
compile = dict(dynamic=False, mode='reduce-overhead')
