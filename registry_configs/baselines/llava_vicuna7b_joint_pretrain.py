# LLaVA-1.5 phase 1 (projector only, LLaVA-Pretrain-558K) as llava_vicuna7b_sghc_pretrain.py,
# on VILA-U / MUSE-VL joint training (one 16384 x 32 codebook on a trained SigLIP-L/16): its quantised codes (32-d).
# Needs the tokenizer export of baselines/joint_siglip_l16.py.
_base_ = ['../llava_vicuna7b_sghc_pretrain.py']
model = dict(vision=dict(_delete_=True, type='TokenizerFeatures',
                         tokenizer='work_dirs/joint_siglip_l16/export'))
