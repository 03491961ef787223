# GPU reference, flat world, stage 1: K = 1024 semantic codes over the teacher's features
# (256 codes left most patches sharing a handful of codes; docs/shapes_reference.md).
_base_ = ['../demo/spc_shapes.py']
model = dict(semantic_encoder=dict(pretrained='work_dirs/teacher_flat64/export'),
             semantic_quantizer=dict(num_codes=1024))
train_dataloader = dict(batch_size=128, num_workers=4)
param_scheduler = dict(warmup_steps=50)
train_cfg = dict(max_steps=1500, log_interval=50)
checkpoint = dict(interval=500)
