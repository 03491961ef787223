# SemHiTok with m = 8 sub-codes per semantic code (16384 x 8 = 131072 global ids).
_base_ = ['../sghc_vitb.py']
model = dict(pixel_quantizer=dict(sub_codes=8))
