# Demo twin of baselines/semhitok_subcodes_8.py: m = 8 sub-codes per semantic code
# (256 x 8 = 2048 global ids), channel concat as in every sub-code row of Tab. 5.
_base_ = ['../sghc_shapes.py']
model = dict(fusion='channel', pixel_quantizer=dict(sub_codes=8))
