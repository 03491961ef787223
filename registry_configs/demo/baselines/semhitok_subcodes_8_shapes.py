# Demo twin of baselines/semhitok_subcodes_8.py: m = 8 sub-codes per semantic code
# (256 x 8 = 2048 global ids).
_base_ = ['../sghc_shapes.py']
model = dict(pixel_quantizer=dict(sub_codes=8))
