# The continuous-feature baseline of the understanding demo (LLaVA / Janus-understanding):
# the demo teacher's SigLIP features, no quantisation, trained exactly like
# llava_sghc_shapes.py. Needs work_dirs/shapes_siglip/export.
_base_ = ['./llava_sghc_shapes.py']
model = dict(vision=dict(_delete_=True, type='ContinuousFeatures',
                         encoder=dict(type='SemanticEncoder',
                                      pretrained='work_dirs/shapes_siglip/export')))
