# GPU reference, flat world: the TokenFlow-style dual codebook
# (demo/baselines/dual_codebook_shapes.py): frozen teacher_flat64 + sghc_flat64.py's pixel
# encoder, 12,288 paired 16-d semantic / 16-d pixel codes under one shared index (as many
# ids as sghc_flat64's 1024 x 12), semantic and pixel decoders trained together in one
# stage, at sghc_flat64.py's budget (batch 256, 5000 steps, lr 1e-3, L1 + L2, no
# discriminator).
_base_ = ['../demo/baselines/dual_codebook_shapes.py']
model = dict(semantic_encoder=dict(pretrained='work_dirs/teacher_flat64/export'),
             quantizer=dict(num_codes=12288))
discriminator = None
train_dataloader = dict(batch_size=256, num_workers=4)
param_scheduler = dict(warmup_steps=100)
train_cfg = dict(max_steps=5000, log_interval=100)
checkpoint = dict(interval=1000)
