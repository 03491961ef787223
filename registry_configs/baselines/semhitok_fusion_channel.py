# SemHiTok, Tab. 5 row "channel concat": semantic || texture codes per token (64-d) into
# the pixel decoder. The default of sghc_vitb.py, pinned here for the ablation table.
_base_ = ['../sghc_vitb.py']
model = dict(fusion='channel', pixel_decoder=dict(in_dim=64))
