# LLaVA-1.5 phase 1 (projector only, LLaVA-Pretrain-558K) as llava_vicuna7b_sghc_pretrain.py,
# on the LlamaGen-style pixel VQ (ViT-B/16, 16384 x 8): its quantised codes (8-d; no text-aligned features: the baseline without semantics).
# Needs the tokenizer export of baselines/pixel_vq_vitb.py.
_base_ = ['../llava_vicuna7b_sghc_pretrain.py']
model = dict(vision=dict(_delete_=True, type='TokenizerFeatures',
                         tokenizer='work_dirs/pixel_vq_vitb/export'))
