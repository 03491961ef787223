# The continuous-feature baseline (LLaVA / Janus understanding), phase 1: SemHiTok's own
# SigLIP-L/16 tower (checkpoints/siglip-large-patch16-256), the same features SPC
# quantises (its last layer), no quantisation, same recipe.
_base_ = ['./llava_vicuna7b_sghc_pretrain.py']
model = dict(vision=dict(_delete_=True, type='ContinuousFeatures',
                         encoder=dict(type='SemanticEncoder',
                                      pretrained='checkpoints/siglip-large-patch16-256')))
