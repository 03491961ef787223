# The unified MLLM as unified_vicuna7b_sghc.py (one Vicuna-7B v1.5, 50/50 LLaVA-v1.5-mix-665K
# conversations and pre-tokenised image-text pairs, flat head), on the TokenFlow-style dual codebook (16384 paired semantic / pixel codes under one index): semantic ‖ pixel codes (64-d).
# Starts from llava_vicuna7b_dual_codebook_pretrain.py's projector; the pairs are pre-tokenised with
# this tokenizer by t2i_qwen25_3b_dual_codebook.py's command (data/t2i/tokens_dual_codebook).
_base_ = ['../unified_vicuna7b_sghc.py']
model = dict(image_tokenizer='work_dirs/dual_codebook_siglip_l16/export',
             projector_from='work_dirs/llava_vicuna7b_dual_codebook_pretrain/export')
train_dataloader = dict(dataset=dict(generation=dict(urls='data/t2i/tokens_dual_codebook')))
