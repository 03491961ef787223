# Ablation (Tab. 4, understanding reference), textured world: llava_sghc_textured128.py
# trained and scored exactly alike on teacher_textured128's continuous features (no VQ).
_base_ = ['./llava_sghc_textured128.py']
model = dict(vision=dict(_delete_=True, type='ContinuousFeatures',
                         encoder=dict(type='SemanticEncoder',
                                      pretrained='work_dirs/teacher_textured128/export')))
