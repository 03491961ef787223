# Runtime defaults shared by every recipe.
randomness = dict(seed=0)
deepspeed = dict(zero_stage=2)  # precision: bf16 on GPU, fp32 on CPU unless set
checkpoint = dict(interval=1000, max_keep=3)
log_cfg = dict(tensorboard=True)
