# Text-to-image as t2i_qwen25_3b.py (Qwen2.5-3B, flat visual head, CFG dropout 0.1,
# packed rows), emitting the ids of baselines/joint_siglip_l16.py (16384 visual tokens, 256 per
# image) instead of SemHiTok's. Pre-tokenised shards for the unified recipe:
#   python tools/pretokenize.py registry_configs/baselines/t2i_qwen25_3b_joint.py \
#       --out data/t2i/tokens_joint
_base_ = ['../t2i_qwen25_3b.py']
model = dict(image_tokenizer='work_dirs/joint_siglip_l16/export')
