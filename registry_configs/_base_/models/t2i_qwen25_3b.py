# Text-to-image MLLM: Qwen2.5-3B (checkpoints/Qwen2.5-3B, a copy of Qwen/Qwen2.5-3B) + the
# SemHiTok export of registry_configs/enhance_decoder_vitl.py (K = 16384, m = 12: 196,608
# visual tokens, 256 per image).
model = dict(
    type='GenerationMLLM',
    llm='checkpoints/Qwen2.5-3B',
    image_tokenizer='work_dirs/enhance_decoder_vitl/export',
    visual_head=dict(type='FlatVisualHead'),
    uncond_prob=0.1,
    max_caption_tokens=120,
    pack_length=4096,
    attn_implementation='sdpa',
    gradient_checkpointing=True)
