# SemHiTok, Tab. 5 row "length concat": semantic then texture codes as 2 x 256 decoder
# tokens (32-d each); the decoder reads the last 256 as the image patches.
_base_ = ['../sghc_vitb.py']
model = dict(fusion='length', pixel_decoder=dict(in_dim=32, num_tokens=512))
