# Text-to-image generation (the paper's recipe): Qwen2.5-3B emits SemHiTok tokens after a
# caption; caption dropped for the unconditional prompt with p = 0.1; ZeRO-2, bf16, packed
# rows of up to 4096 tokens (position ids restart per sample). GenEval and MJHQ-30K FID
# with classifier-free guidance: tools/test.py CONFIG EXPORT --task geneval|mjhq.
_base_ = ['./_base_/models/t2i_qwen25_3b.py', './_base_/datasets/t2i_pairs_256.py',
          './_base_/schedules/adamw_cosine.py', './_base_/default_runtime.py']
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05),
                     clip_grad=1.0, accumulative_counts=1)
param_scheduler = dict(type='WarmupCosine', warmup_steps=2000, min_lr_ratio=0.1)
train_cfg = dict(max_steps=200000, log_interval=20)
deepspeed = dict(zero_stage=2, precision='bf16')
checkpoint = dict(interval=2000, max_keep=3)
# torch.compile the LLM's decoder layers one by one (sequence building, masks and the visual
# head's loss stay eager); packed rows change width, so dynamo's automatic dynamic shapes
# (dynamic=None) recompile once instead of per width: docs/performance.md; compile=None: eager
compile = dict(dynamic=None)
