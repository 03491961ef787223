# GPU reference, flat world, understanding: the continuous baseline of llava_sghc_flat64.py,
# the teacher's (teacher_flat64) features without quantisation, trained exactly alike.
_base_ = ['./llava_sghc_flat64.py']
model = dict(vision=dict(_delete_=True, type='ContinuousFeatures',
                         encoder=dict(type='SemanticEncoder',
                                      pretrained='work_dirs/teacher_flat64/export')))
