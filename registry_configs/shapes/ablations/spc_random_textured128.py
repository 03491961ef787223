# Ablation (the paper's Tab. 4, row 1), textured world, stage 1: spc_textured128 with a
# RANDOMLY initialised semantic encoder (teacher_textured128's architecture, fresh weights)
# trained together with the SPC toward the frozen teacher_textured128 tower, named
# explicitly as the distillation target. Same data, codebook and budget as
# spc_textured128, whose encoder is the teacher itself (row 2).
_base_ = ['../spc_textured128.py']
_teacher = 'work_dirs/teacher_textured128/export'
model = dict(semantic_encoder=dict(init='random'), train_semantic_encoder=True,
             teacher=dict(type='SemanticEncoder', pretrained=_teacher))
