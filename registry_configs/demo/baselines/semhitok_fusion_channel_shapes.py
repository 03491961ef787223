# Demo twin of baselines/semhitok_fusion_channel.py: demo/sghc_shapes.py's default
# (semantic || texture, 32-d decoder tokens), pinned for the ablation table.
_base_ = ['../sghc_shapes.py']
model = dict(fusion='channel', pixel_decoder=dict(in_dim=32))
