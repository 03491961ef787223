# LLaVA-1.5 phase 1 (projector only, LLaVA-Pretrain-558K) as llava_vicuna7b_sghc_pretrain.py,
# on Janus-style dual encoders: the frozen SigLIP-L/16 tower's continuous features (1024-d) for understanding, the pixel VQ's 16384 ids for generation.
# Needs the tokenizer export of baselines/dual_encoder_siglip_l16.py.
_base_ = ['../llava_vicuna7b_sghc_pretrain.py']
model = dict(vision=dict(_delete_=True, type='TokenizerFeatures',
                         tokenizer='work_dirs/dual_encoder_siglip_l16/export'))
