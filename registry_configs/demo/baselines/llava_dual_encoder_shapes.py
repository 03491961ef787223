# Understanding demo as demo/llava_sghc_shapes.py (shapes VQA, mlp2x_gelu, tiny LLaMA), on
# Janus-style dual encoders: the demo teacher's continuous features (96-d) for understanding, the pixel VQ's 3072 ids for generation.
# Needs work_dirs/dual_encoder_shapes/export (demo/baselines/dual_encoder_shapes.py) and work_dirs/tiny_llama.
_base_ = ['../llava_sghc_shapes.py']
model = dict(vision=dict(tokenizer='work_dirs/dual_encoder_shapes/export'))
