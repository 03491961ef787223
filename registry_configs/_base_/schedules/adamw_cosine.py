# AdamW with linear warm-up then cosine decay, by optimizer steps.
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.98), weight_decay=0.05),
                     clip_grad=1.0, accumulative_counts=1)
param_scheduler = dict(type='WarmupCosine', warmup_steps=100, min_lr_ratio=0.05)
train_cfg = dict(max_steps=1000, log_interval=20)
