# The unified MLLM as unified_vicuna7b_sghc.py (one Vicuna-7B v1.5, 50/50 LLaVA-v1.5-mix-665K
# conversations and pre-tokenised image-text pairs, flat head), on Janus-style dual encoders: the frozen SigLIP-L/16 tower's continuous features (1024-d) for understanding, the pixel VQ's 16384 ids for generation.
# Starts from llava_vicuna7b_dual_encoder_pretrain.py's projector; the pairs are pre-tokenised with
# this tokenizer by t2i_qwen25_3b_dual_encoder.py's command (data/t2i/tokens_dual_encoder).
_base_ = ['../unified_vicuna7b_sghc.py']
model = dict(image_tokenizer='work_dirs/dual_encoder_siglip_l16/export',
             projector_from='work_dirs/llava_vicuna7b_dual_encoder_pretrain/export')
train_dataloader = dict(dataset=dict(generation=dict(urls='data/t2i/tokens_dual_encoder')))
