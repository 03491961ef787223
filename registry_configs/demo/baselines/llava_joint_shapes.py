# Understanding demo as demo/llava_sghc_shapes.py (shapes VQA, mlp2x_gelu, tiny LLaMA), on
# the joint tokenizer (one 3072 x 16 codebook on the trained demo teacher): its quantised codes (16-d).
# Needs work_dirs/joint_shapes/export (demo/baselines/joint_shapes.py) and work_dirs/tiny_llama.
_base_ = ['../llava_sghc_shapes.py']
model = dict(vision=dict(tokenizer='work_dirs/joint_shapes/export'))
