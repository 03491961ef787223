# The unified MLLM as unified_vicuna7b_sghc.py (one Vicuna-7B v1.5, 50/50 LLaVA-v1.5-mix-665K
# conversations and pre-tokenised image-text pairs, flat head), on the LlamaGen-style pixel VQ (ViT-B/16, 16384 x 8): its quantised codes (8-d; no text-aligned features: the baseline without semantics).
# Starts from llava_vicuna7b_pixel_vq_pretrain.py's projector; the pairs are pre-tokenised with
# this tokenizer by t2i_qwen25_3b_pixel_vq.py's command (data/t2i/tokens_pixel_vq).
_base_ = ['../unified_vicuna7b_sghc.py']
model = dict(image_tokenizer='work_dirs/pixel_vq_vitb/export',
             projector_from='work_dirs/llava_vicuna7b_pixel_vq_pretrain/export')
train_dataloader = dict(dataset=dict(generation=dict(urls='data/t2i/tokens_pixel_vq')))
