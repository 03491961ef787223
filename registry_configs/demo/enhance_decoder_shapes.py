# Stage 3 of the demo tokenizer: a larger pixel decoder (EnhanceDecoder) trained on the
# frozen codes of stage 2.
_base_ = ['./sghc_shapes.py']
model = dict(
    stage='enhance',
    init_from='work_dirs/sghc_shapes/export',
    init_exclude=['pixel_decoder.'],
    pixel_decoder=dict(type='EnhanceDecoder', width=160, depth=6))
# the discriminator starts inside this stage's 300 steps (stage 2's start, 400, never came)
discriminator = dict(start_step=100)
train_cfg = dict(max_steps=300)
