# SemHiTok with m = 12 sub-codes per semantic code (16384 x 12 = 196608 global ids).
# The default of sghc_vitb.py, pinned here for the ablation table.
_base_ = ['../sghc_vitb.py']
model = dict(pixel_quantizer=dict(sub_codes=12))
