# LLaVA-1.5 phase 1 (projector only, LLaVA-Pretrain-558K) as llava_vicuna7b_sghc_pretrain.py,
# on the TokenFlow-style dual codebook (16384 paired semantic / pixel codes under one index): semantic ‖ pixel codes (64-d).
# Needs the tokenizer export of baselines/dual_codebook_siglip_l16.py.
_base_ = ['../llava_vicuna7b_sghc_pretrain.py']
model = dict(vision=dict(_delete_=True, type='TokenizerFeatures',
                         tokenizer='work_dirs/dual_codebook_siglip_l16/export'))
