# GPU reference, flat world, stage 2: SGHC (m = 12 sub-codes under each of the K = 1024
# semantic codes), ViT pixel encoder / decoder, L1 + L2. No discriminator: at equal budget
# the PatchGAN term lowered PSNR and attribute accuracy here (docs/tokenizer.md). Batch 256:
# at this size a step costs about as much at 64 as at 256 images on one GPU, and 4x the
# images per step moved PSNR more than any other change (docs/tokenizer.md).
_base_ = ['../demo/sghc_shapes.py']
model = dict(semantic_encoder=dict(pretrained='work_dirs/teacher_flat64/export'),
             semantic_quantizer=dict(num_codes=1024),
             init_from='work_dirs/spc_flat64/export',
             pixel_quantizer=dict(num_semantic_codes=1024))
discriminator = None
train_dataloader = dict(batch_size=256, num_workers=4)
param_scheduler = dict(warmup_steps=100)
train_cfg = dict(max_steps=5000, log_interval=100)
checkpoint = dict(interval=1000)
