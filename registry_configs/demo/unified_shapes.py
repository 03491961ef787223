# Unified demo on the shapes world (CPU, minutes): ONE tiny LLaMA (tools/make_tiny_lm.py)
# answers shapes-VQA questions about images (SGHC features -> mlp2x_gelu projector) AND
# draws shapes scenes (the demo SemHiTok's 3,072 visual tokens + <boi>/<eoi>), trained on a
# 50/50 stream of VQA conversations and pre-tokenised caption-image pairs. Needs
# work_dirs/sghc_shapes/export (tools/run_demo.sh), work_dirs/tiny_llama and
# work_dirs/t2i_shapes_tokens (tools/run_t2i_demo.sh's pretokenize step);
# bash tools/run_unified_demo.sh trains it next to the two single-task models
# (docs/unified.md).
_base_ = ['../_base_/schedules/adamw_cosine.py', '../_base_/default_runtime.py']
_llm = 'work_dirs/tiny_llama'
_tokenizer = 'work_dirs/sghc_shapes/export'
model = dict(
    type='UnifiedMLLM',
    llm=_llm,
    image_tokenizer=_tokenizer,
    image_input='projector',  # or 'visual_tokens': the image's ids through the LLM's embeddings
    projector=dict(type='MLPProjector', kind='mlp2x_gelu'),
    template='vicuna_v1',
    visual_head=dict(type='FlatVisualHead'),
    uncond_prob=0.1,
    max_caption_tokens=32)
train_dataloader = dict(
    batch_size=8, num_workers=0,  # 4 conversations + 4 images per step
    dataset=dict(
        type='MixedTaskDataset', understanding_ratio=0.5, seed=0,
        understanding=dict(type='ShapesLLaVADataset', tokenizer=_llm, kind='vqa', seed=0,
                           resolution=64, start=0, length=5000, template='vicuna_v1',
                           num_image_tokens=64, max_length=512, turns=8),
        generation=dict(type='PretokenizedT2IShards', urls='work_dirs/t2i_shapes_tokens',
                        shuffle_buffer=2000)))
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.0))
param_scheduler = dict(type='WarmupCosine', warmup_steps=15, min_lr_ratio=0.05)
train_cfg = dict(max_steps=500, log_interval=10)
deepspeed = dict(zero_stage=0)
checkpoint = dict(interval=250)
_sampling = dict(cfg_scale=3.0, temperature=1.0, top_k=0, top_p=1.0)
test_cfg = dict(
    vqa=dict(type='ShapesVQAEvaluator', batch_size=50, max_questions=1000,
             dataset=dict(type='ShapesVQADataset', seed=0, resolution=64, start=100000,
                          length=100)),
    lmms=dict(type='LmmsEvalEvaluator', tasks=['shapes_vqa', 'shapes_vqa_yesno'], limit=None),
    shapes_geneval=dict(type='ShapesGenEvalEvaluator', n_per_tag=25, n_samples=4,
                        batch_size=100, sampling=_sampling, save_layout=True),
    shapes_geneval_random=dict(type='ShapesGenEvalEvaluator', n_per_tag=25, n_samples=4,
                               generator='random_tokens'),
    # each task's own loss on held-out scenes (100000..): answer-token / visual-token CE
    heldout_loss_und=dict(type='HeldOutLossEvaluator', batch_size=16, dataset=dict(
        type='ShapesLLaVADataset', tokenizer=_llm, kind='vqa', seed=0, resolution=64,
        start=100000, length=200, template='vicuna_v1', num_image_tokens=64, max_length=512,
        turns=8)),
    heldout_loss_gen=dict(type='HeldOutLossEvaluator', batch_size=32, dataset=dict(
        type='ShapesCaptionDataset', seed=0, resolution=64, start=100000, length=512)))
