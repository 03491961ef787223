# Stage 1 of the demo tokenizer: the semantic-priority codebook over the stage-0 teacher.
# Needs work_dirs/shapes_siglip/export (registry_configs/demo/shapes_siglip.py).
_base_ = ['../_base_/models/semhitok_shapes_64.py', '../_base_/datasets/shapes_images_64.py',
          '../_base_/schedules/adamw_cosine.py', '../_base_/default_runtime.py']
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = dict(warmup_steps=20)
train_cfg = dict(max_steps=300, log_interval=25)
checkpoint = dict(interval=150)
