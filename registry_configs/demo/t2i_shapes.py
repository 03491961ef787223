# Text-to-image demo on the shapes world (CPU, minutes): a tiny Qwen2 (tools/make_tiny_lm.py)
# learns to emit the demo SemHiTok's tokens (64 per 64 px image, K*m = 3072) after a
# caption, from pre-tokenised shards. Steps (docs/generation.md):
#   python tools/make_tiny_lm.py --arch qwen2 --out work_dirs/tiny_qwen2
#   python tools/pretokenize.py registry_configs/demo/t2i_shapes.py --source _source_dataset \
#       --out work_dirs/t2i_shapes_tokens
#   python tools/train.py registry_configs/demo/t2i_shapes.py
#   python tools/test.py registry_configs/demo/t2i_shapes.py work_dirs/t2i_shapes/export \
#       --task shapes_geneval      (and --task shapes_geneval_random: the random-token floor)
_base_ = ['../_base_/schedules/adamw_cosine.py', '../_base_/default_runtime.py']
# the image-caption pairs that tools/pretokenize.py turns into the training shards
_source_dataset = dict(type='ShapesCaptionDataset', seed=0, resolution=64, start=0,
                       length=20000)
model = dict(
    type='GenerationMLLM',
    llm='work_dirs/tiny_qwen2',
    image_tokenizer='work_dirs/sghc_shapes/export',
    visual_head=dict(type='FlatVisualHead'),
    uncond_prob=0.1,
    max_caption_tokens=32)
train_dataloader = dict(
    batch_size=32, num_workers=0,
    dataset=dict(type='PretokenizedT2IShards', urls='work_dirs/t2i_shapes_tokens',
                 shuffle_buffer=2000))
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.01))
param_scheduler = dict(type='WarmupCosine', warmup_steps=100, min_lr_ratio=0.05)
train_cfg = dict(max_steps=1000, log_interval=50)
deepspeed = dict(zero_stage=0)
checkpoint = dict(interval=500)
_sampling = dict(cfg_scale=3.0, temperature=1.0, top_k=0, top_p=1.0)
test_cfg = dict(
    shapes_geneval=dict(type='ShapesGenEvalEvaluator', n_per_tag=25, n_samples=4,
                        batch_size=100, sampling=_sampling, save_layout=True),
    shapes_geneval_random=dict(type='ShapesGenEvalEvaluator', n_per_tag=25, n_samples=4,
                               generator='random_tokens'),
    shapes_geneval_reconstruction=dict(type='ShapesGenEvalEvaluator', n_per_tag=25,
                                       n_samples=4, generator='reconstruction'))
