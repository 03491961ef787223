# Ablation (Tab. 5, fusion "w/o sem"), textured world: sghc_textured128 whose pixel decoder
# reads the SGHC sub-codes only (they are still chosen under each patch's semantic code).
_base_ = ['../sghc_textured128.py']
model = dict(fusion='texture', pixel_decoder=dict(in_dim=16))
