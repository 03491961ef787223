# GPU reference, textured world, stage 1: K = 1024 semantic codes over the 128 px teacher.
_base_ = ['../_base_/models/semhitok_shapes_64.py',
          '../_base_/datasets/shapes_textured_images_128.py',
          '../_base_/schedules/adamw_cosine.py', '../_base_/default_runtime.py']
model = dict(semantic_encoder=dict(pretrained='work_dirs/teacher_textured128/export'),
             semantic_quantizer=dict(num_codes=1024),
             semantic_decoder=dict(num_tokens=256))
train_dataloader = dict(batch_size=128, num_workers=6)
param_scheduler = dict(warmup_steps=50)
train_cfg = dict(max_steps=800, log_interval=50)
checkpoint = dict(interval=500)
