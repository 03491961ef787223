# Demo twin of baselines/semhitok_fusion_length.py: semantic then texture codes as
# 2 x 64 decoder tokens of 16-d.
_base_ = ['../sghc_shapes.py']
model = dict(fusion='length', pixel_decoder=dict(in_dim=16, num_tokens=128))
