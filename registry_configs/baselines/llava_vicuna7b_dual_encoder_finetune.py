# LLaVA-1.5 phase 2 (projector + Vicuna-7B, LLaVA-v1.5-mix-665K) as
# llava_vicuna7b_sghc_finetune.py, on the tokenizer of llava_vicuna7b_dual_encoder_pretrain.py,
# starting from its phase-1 projector.
_base_ = ['../llava_vicuna7b_sghc_finetune.py']
model = dict(vision=dict(_delete_=True, type='TokenizerFeatures',
                         tokenizer='work_dirs/dual_encoder_siglip_l16/export'),
             projector_from='work_dirs/llava_vicuna7b_dual_encoder_pretrain/export')
