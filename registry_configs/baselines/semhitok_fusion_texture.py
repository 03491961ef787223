# SemHiTok, Tab. 5 row "texture only": the pixel decoder sees only the SGHC sub-codes
# (which were still chosen under the semantic codes).
_base_ = ['../sghc_vitb.py']
model = dict(fusion='texture', pixel_decoder=dict(in_dim=32))
