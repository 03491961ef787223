# GPU reference, flat world, understanding: llava_sghc_flat64.py trained exactly alike on
# pixel_vq_flat64's features: the pixel VQ's quantised codes (8-d, no text-aligned features).
_base_ = ['./llava_sghc_flat64.py']
model = dict(vision=dict(tokenizer='work_dirs/pixel_vq_flat64/export'))
