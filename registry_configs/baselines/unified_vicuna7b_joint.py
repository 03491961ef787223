# The unified MLLM as unified_vicuna7b_sghc.py (one Vicuna-7B v1.5, 50/50 LLaVA-v1.5-mix-665K
# conversations and pre-tokenised image-text pairs, flat head), on VILA-U / MUSE-VL joint training (one 16384 x 32 codebook on a trained SigLIP-L/16): its quantised codes (32-d).
# Starts from llava_vicuna7b_joint_pretrain.py's projector; the pairs are pre-tokenised with
# this tokenizer by t2i_qwen25_3b_joint.py's command (data/t2i/tokens_joint).
_base_ = ['../unified_vicuna7b_sghc.py']
model = dict(image_tokenizer='work_dirs/joint_siglip_l16/export',
             projector_from='work_dirs/llava_vicuna7b_joint_pretrain/export')
train_dataloader = dict(dataset=dict(generation=dict(urls='data/t2i/tokens_joint')))
