# SemHiTok, Tab. 5 / Fig. 3 row "semantic only": a pixel decoder on the frozen SPC codes
# alone; no pixel encoder or sub-codebook (ids are the 16384 semantic ids).
_base_ = ['../sghc_vitb.py']
model = dict(fusion='semantic', pixel_encoder=None, pixel_quantizer=None,
             pixel_decoder=dict(in_dim=32))
