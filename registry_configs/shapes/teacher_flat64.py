# GPU reference, flat world, stage 0: the demo's tiny SigLIP teacher trained longer.
_base_ = ['../demo/shapes_siglip.py']
train_dataloader = dict(batch_size=128, num_workers=4)
param_scheduler = dict(warmup_steps=100)
train_cfg = dict(max_steps=2000, log_interval=50)
checkpoint = dict(interval=500)
