# The unified MLLM at the paper's scale: ONE Vicuna-7B v1.5 answers questions about images
# (SemHiTok semantic ‖ texture features -> mlp2x_gelu projector, LLaVA-1.5) and draws them
# (vocabulary + 196,608 SemHiTok tokens + <boi>/<eoi>, flat head, CFG), trained on a 50/50
# stream of LLaVA-v1.5-mix-665K conversations and pre-tokenised image-text pairs.
# Starts from the LLaVA phase-1 projector (registry_configs/llava_vicuna7b_sghc_pretrain.py).
# 8 GPUs x 16 = global batch 128 (64 conversations + 64 images per step); 10,400 steps is one
# pass over the 665K conversations (raise it for more generation data); lr 1e-4 (the new
# visual rows of the embedding table and head start from scratch), 3% warm-up, cosine.
# ZeRO-2 + bf16 + gradient checkpointing: the flat visual head reads lm_head.weight outside
# lm_head's forward, which ZeRO-3 would not gather (docs/generation.md); 7B + 1.6B new
# embedding/head rows with ZeRO-2 optimizer and gradient partitioning fit 80 GB GPUs.
# Data: data/llava/llava_v1_5_mix665k.json + data/llava/images; pairs pre-tokenised with
#   python tools/pretokenize.py registry_configs/t2i_qwen25_3b.py --out data/t2i/tokens
# (the tokens depend only on the SemHiTok export, not on the LLM).
_base_ = ['./_base_/default_runtime.py', './_base_/evaluation/t2i_geneval_mjhq.py']
_llm = 'checkpoints/vicuna-7b-v1.5'
_tokenizer = 'work_dirs/enhance_decoder_vitl/export'
model = dict(
    type='UnifiedMLLM',
    llm=_llm,
    image_tokenizer=_tokenizer,
    image_input='projector',
    projector=dict(type='MLPProjector', kind='mlp2x_gelu'),
    projector_from='work_dirs/llava_vicuna7b_sghc_pretrain/export',
    template='vicuna_v1',
    visual_head=dict(type='FlatVisualHead'),
    uncond_prob=0.1,
    max_caption_tokens=120,
    gradient_checkpointing=True)
train_dataloader = dict(
    batch_size=16, num_workers=8,
    dataset=dict(
        type='MixedTaskDataset', understanding_ratio=0.5, seed=0,
        understanding=dict(type='LLaVADataset', data_path='data/llava/llava_v1_5_mix665k.json',
                           image_folder='data/llava/images', tokenizer=_llm,
                           template='vicuna_v1', num_image_tokens=256, image_size=256,
                           max_length=2048),
        generation=dict(type='PretokenizedT2IShards', urls='data/t2i/tokens',
                        shuffle_buffer=5000)))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05),
                     clip_grad=1.0, accumulative_counts=1)
param_scheduler = dict(type='WarmupCosine', warmup_steps=312, min_lr_ratio=0.1)  # 3% of 10,400
train_cfg = dict(max_steps=10400, log_interval=10)
deepspeed = dict(zero_stage=2, precision='bf16')
checkpoint = dict(interval=1000, max_keep=3)
test_cfg = dict(
    lmms=dict(type='LmmsEvalEvaluator',  # as llava_vicuna7b_sghc_finetune.py
              tasks=['mme', 'pope', 'gqa', 'seedbench', 'mmbench_en_dev_static', 'mmmu_val'],
              batch_size=1))
