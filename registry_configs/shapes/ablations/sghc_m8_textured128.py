# Ablation (the paper's Tab. 5, sub-codebook size), textured world: sghc_textured128 with
# m = 8 sub-codes per semantic code (1024 x 8 ids; m = 12 is sghc_textured128).
_base_ = ['../sghc_textured128.py']
model = dict(pixel_quantizer=dict(sub_codes=8))
