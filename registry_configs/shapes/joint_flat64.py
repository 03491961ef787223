# GPU reference, flat world: the VILA-U / MUSE-VL-style joint tokenizer
# (demo/baselines/joint_shapes.py) at sghc_flat64.py's budget (batch 256, 5000 steps,
# lr 1e-3, L1 + L2, no discriminator): teacher_flat64's tower trained under ONE
# 12,288 x 16 codebook (as many ids as sghc_flat64's 1024 x 12), cosine to the frozen
# teacher + pixel losses in one stage.
_base_ = ['../demo/baselines/joint_shapes.py']
_teacher = 'work_dirs/teacher_flat64/export'
model = dict(encoder=dict(pretrained=_teacher), teacher=dict(pretrained=_teacher),
             quantizer=dict(num_codes=12288))
discriminator = None
train_dataloader = dict(batch_size=256, num_workers=4)
param_scheduler = dict(warmup_steps=100)
train_cfg = dict(max_steps=5000, log_interval=100)
checkpoint = dict(interval=1000)
