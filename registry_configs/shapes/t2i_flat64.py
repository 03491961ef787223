# GPU reference, flat world, generation: the text-to-image demo recipe on sghc_flat64's
# tokens (64 per image, 1024 x 12 = 12,288 visual ids, read from the export) and a
# 256-wide, 6-layer random LLaMA (work_dirs/reference_llama: the unified model's LLM, so the
# two compare like for like), from the caption-image pairs below pre-tokenised into
# work_dirs/t2i_flat64_tokens (both made by tools/shapes_reference.py). Target:
# shapes-GenEval overall >= 0.70.
_base_ = ['../demo/t2i_shapes.py']
_source_dataset = dict(length=50000)
model = dict(llm='work_dirs/reference_llama', image_tokenizer='work_dirs/sghc_flat64/export')
train_dataloader = dict(batch_size=32, num_workers=4,
                        dataset=dict(urls='work_dirs/t2i_flat64_tokens'))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = dict(warmup_steps=200)
train_cfg = dict(max_steps=4000, log_interval=50)
checkpoint = dict(interval=1000)
