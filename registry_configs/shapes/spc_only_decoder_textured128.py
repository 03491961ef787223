# GPU reference, textured world: the SPC-only control (the paper's Fig. 3), same decoder,
# budget and losses as sghc_textured128.py, no texture branch.
_base_ = ['./sghc_textured128.py']
model = dict(fusion='semantic', pixel_encoder=None, pixel_quantizer=None,
             pixel_decoder=dict(in_dim=16))
