# The continuous-feature baseline, phase 2 (see llava_vicuna7b_sghc_finetune.py).
_base_ = ['./llava_vicuna7b_sghc_finetune.py']
model = dict(vision=dict(_delete_=True, type='ContinuousFeatures',
                         encoder=dict(type='SemanticEncoder',
                                      pretrained='checkpoints/siglip-large-patch16-256')),
             projector_from='work_dirs/llava_vicuna7b_siglip_pretrain/export')
