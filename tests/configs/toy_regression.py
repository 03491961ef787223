# A tiny regression recipe the engine tests train on the CPU.
custom_imports = dict(imports=['tests.toy'])
model = dict(type='ToyRegressor', dim=8, hidden=16)
train_dataloader = dict(batch_size=8, num_workers=0, shuffle=True,
                        dataset=dict(type='ToyRegressionDataset', length=64, dim=8))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=5e-2, weight_decay=0.01), clip_grad=1.0)
param_scheduler = dict(type='WarmupCosine', warmup_steps=3, min_lr_ratio=0.1)
train_cfg = dict(max_steps=30, log_interval=1)
checkpoint = dict(interval=5, max_keep=2)
deepspeed = dict(zero_stage=2, precision='fp32')
log_cfg = dict(tensorboard=True)
randomness = dict(seed=1)
