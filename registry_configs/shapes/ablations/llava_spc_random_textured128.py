# Ablation (Tab. 4, understanding), textured world: llava_sghc_textured128.py trained and
# scored exactly alike on spc_random_textured128's quantised features.
_base_ = ['./llava_sghc_textured128.py']
model = dict(vision=dict(tokenizer='work_dirs/spc_random_textured128/export'))
