# Demo twin of baselines/semhitok_fusion_texture.py: the pixel decoder reads the SGHC
# sub-codes only.
_base_ = ['../sghc_shapes.py']
model = dict(fusion='texture', pixel_decoder=dict(in_dim=16))
