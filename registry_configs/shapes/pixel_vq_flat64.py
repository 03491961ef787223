# GPU reference, flat world: the LlamaGen-style pixel VQ (demo/baselines/pixel_vq_shapes.py:
# sghc_flat64.py's ViT pixel encoder / decoder, no teacher) with a learnable 12,288 x 8
# codebook (as many ids as sghc_flat64's 1024 x 12), at sghc_flat64.py's budget (batch 256,
# 5000 steps, lr 1e-3, L1 + L2, no discriminator). Also the generation half of the
# Janus-style row of the comparison (docs/baselines.md).
_base_ = ['../demo/baselines/pixel_vq_shapes.py']
model = dict(quantizer=dict(num_codes=12288))
discriminator = None
train_dataloader = dict(batch_size=256, num_workers=4)
param_scheduler = dict(warmup_steps=100)
train_cfg = dict(max_steps=5000, log_interval=100)
checkpoint = dict(interval=1000)
