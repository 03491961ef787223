# Ablation (the paper's Tab. 5, fusion), textured world: sghc_textured128 with length
# concat, semantic then texture codes as 2 x 256 decoder tokens of 16-d.
_base_ = ['../sghc_textured128.py']
model = dict(fusion='length', pixel_decoder=dict(in_dim=16, num_tokens=512))
