# Demo twin of baselines/semhitok_fusion_semantic.py: a pixel decoder on the frozen SPC
# codes alone, i.e. the Fig. 3 control demo/spc_only_decoder_shapes.py, named here for
# the ablation table.
_base_ = ['../spc_only_decoder_shapes.py']
