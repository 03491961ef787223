# GPU reference, flat world, understanding: llava_sghc_flat64.py trained exactly alike on
# dual_codebook_flat64's features: the dual codebook's semantic ‖ pixel codes (32-d).
_base_ = ['./llava_sghc_flat64.py']
model = dict(vision=dict(tokenizer='work_dirs/dual_codebook_flat64/export'))
