# GPU reference, flat world: the SPC-only control (a pixel decoder on the semantic codes
# alone), same budget and losses as sghc_flat64.py.
_base_ = ['../demo/spc_only_decoder_shapes.py']
model = dict(semantic_encoder=dict(pretrained='work_dirs/teacher_flat64/export'),
             semantic_quantizer=dict(num_codes=1024),
             init_from='work_dirs/spc_flat64/export')
discriminator = None
train_dataloader = dict(batch_size=256, num_workers=4)
param_scheduler = dict(warmup_steps=100)
train_cfg = dict(max_steps=5000, log_interval=100)
checkpoint = dict(interval=1000)
