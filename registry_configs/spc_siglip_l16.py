# Stage 1: the semantic-priority codebook on frozen SigLIP-L/16 features (VQKD-style EMA
# codebook, cosine loss to the teacher). The paper trains it one epoch on COYO-50M; point
# train_dataloader at your shards (WebDatasetShards) to do the same.
_base_ = ['./_base_/models/semhitok_siglip_l16_256.py', './_base_/datasets/imagenet_256.py',
          './_base_/schedules/adamw_cosine.py', './_base_/default_runtime.py']
optim_wrapper = dict(optimizer=dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-4))
param_scheduler = dict(warmup_steps=5000, min_lr_ratio=0.01)
train_cfg = dict(max_steps=200000, log_interval=50)
deepspeed = dict(zero_stage=2, precision='bf16')
checkpoint = dict(interval=5000)
