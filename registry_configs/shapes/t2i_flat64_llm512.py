# GPU scaling study of t2i_flat64 (docs/baselines.md): the same recipe on SGHC's ids with a
# 512-wide, 8-layer random LLaMA (work_dirs/reference_llama_512, tools/make_tiny_lm.py),
# batch 128 and 200,000 pre-tokenised scenes (work_dirs/t2i_flat64_llm512_tokens): 3 times
# the images of t2i_flat64 in 3,000 steps, each scene seen about twice. The reference
# chain keeps the 256-wide LLM that its LLaVA and unified recipes share; this recipe
# measures what capacity and data buy.
_base_ = ['./t2i_flat64.py']
_source_dataset = dict(length=200000)
model = dict(llm='work_dirs/reference_llama_512')
train_dataloader = dict(batch_size=128, dataset=dict(urls='work_dirs/t2i_flat64_llm512_tokens'))
train_cfg = dict(max_steps=3000)
