# Ablation (Tab. 4, row 1: its reconstruction), textured world: the pixel decoder of
# spc_only_decoder_textured128 (same decoder, budget and losses as sghc_textured128, no
# texture branch) on the random-init SPC of spc_random_textured128.
_base_ = ['../spc_only_decoder_textured128.py']
model = dict(init_from='work_dirs/spc_random_textured128/export')
