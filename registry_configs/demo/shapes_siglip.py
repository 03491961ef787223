# Stage 0 of the demo: a tiny SigLIP teacher trained with the sigmoid loss on shapes captions.
# Its export (work_dirs/shapes_siglip/export) is a normal HF SigLIP folder.
_base_ = ['../_base_/models/siglip_tiny_64.py', '../_base_/datasets/shapes_captions_64.py',
          '../_base_/schedules/adamw_cosine.py', '../_base_/default_runtime.py']
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = dict(warmup_steps=30)
train_cfg = dict(max_steps=500, log_interval=25)
checkpoint = dict(interval=250)
