# GPU reference, flat world, understanding: llava_sghc_flat64.py trained exactly alike on
# joint_flat64's features: the joint tokenizer's quantised codes (16-d).
_base_ = ['./llava_sghc_flat64.py']
model = dict(vision=dict(tokenizer='work_dirs/joint_flat64/export'))
