# GPU reference, flat world, unified: the unified demo recipe with reference_llama on
# sghc_flat64 (SGHC features in, its 12,288 visual ids out), 32 VQA conversations + 32
# pre-tokenised caption-image pairs per step: each task sees as many samples as its
# single-task model (llava_sghc_flat64.py, t2i_flat64.py) in as many steps. Target: within
# 0.03 of them on held-out VQA and on shapes-GenEval.
_base_ = ['../demo/unified_shapes.py']
_llm = 'work_dirs/reference_llama'
model = dict(llm=_llm, image_tokenizer='work_dirs/sghc_flat64/export')
train_dataloader = dict(
    batch_size=64, num_workers=4,
    dataset=dict(understanding=dict(tokenizer=_llm, length=100000),
                 generation=dict(urls='work_dirs/t2i_flat64_tokens')))
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = dict(warmup_steps=100)
train_cfg = dict(max_steps=4000, log_interval=50)
checkpoint = dict(interval=1000)
test_cfg = dict(
    heldout_loss_und=dict(dataset=dict(tokenizer=_llm)),
    shapes_geneval_reconstruction=dict(type='ShapesGenEvalEvaluator', n_per_tag=25,
                                       n_samples=4, generator='reconstruction'))
