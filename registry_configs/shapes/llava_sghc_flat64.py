# GPU reference, flat world, understanding: the LLaVA demo recipe on sghc_flat64's SGHC
# features (semantic ‖ texture) and a 256-wide, 6-layer random LLaMA (work_dirs/
# reference_llama, made by tools/shapes_reference.py), projector + LLM trained on shapes
# VQA over 100k scenes. Target: held-out VQA exact match >= 0.90.
_base_ = ['../demo/llava_sghc_shapes.py']
_llm = 'work_dirs/reference_llama'
model = dict(vision=dict(tokenizer='work_dirs/sghc_flat64/export'), llm=_llm)
train_dataloader = dict(batch_size=32, num_workers=4,
                        dataset=dict(tokenizer=_llm, length=100000))
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = dict(warmup_steps=100)
train_cfg = dict(max_steps=4000, log_interval=50)
checkpoint = dict(interval=1000)
