# SemHiTok with m = 16 sub-codes per semantic code (16384 x 16 = 262144 global ids).
_base_ = ['../sghc_vitb.py']
model = dict(pixel_quantizer=dict(sub_codes=16))
