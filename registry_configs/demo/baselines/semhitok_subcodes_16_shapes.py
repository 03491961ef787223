# Demo twin of baselines/semhitok_subcodes_16.py: m = 16 sub-codes per semantic code
# (256 x 16 = 4096 global ids), channel concat as in every sub-code row of Tab. 5.
_base_ = ['../sghc_shapes.py']
model = dict(fusion='channel', pixel_quantizer=dict(sub_codes=16))
