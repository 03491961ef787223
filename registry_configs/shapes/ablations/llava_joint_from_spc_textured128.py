# Ablation (Tab. 4, understanding), textured world: llava_sghc_textured128.py trained and
# scored exactly alike on joint_from_spc_textured128's quantised features.
_base_ = ['./llava_sghc_textured128.py']
model = dict(vision=dict(tokenizer='work_dirs/joint_from_spc_textured128/export'))
