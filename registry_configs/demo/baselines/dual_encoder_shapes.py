# Demo twin of baselines/dual_encoder_siglip_l16.py (Janus): the demo teacher's continuous
# features for understanding, the pixel VQ of pixel_vq_shapes.py for generation.
_base_ = ['./pixel_vq_shapes.py']
model = dict(
    _delete_=True,
    type='DualEncoderTokenizer',
    understanding=dict(type='SemanticEncoder', pretrained='work_dirs/shapes_siglip/export',
                       init='teacher', frozen=True),
    generation={{_base_.model}})
