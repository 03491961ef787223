# Demo twin of baselines/semhitok_subcodes_12.py: m = 12 sub-codes per semantic code
# (256 x 12 = 3072 global ids), channel concat as in every sub-code row of Tab. 5.
# The default of demo/sghc_shapes.py, pinned for the ablation table.
_base_ = ['../sghc_shapes.py']
model = dict(fusion='channel', pixel_quantizer=dict(sub_codes=12))
