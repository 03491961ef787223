# Understanding demo as demo/llava_sghc_shapes.py (shapes VQA, mlp2x_gelu, tiny LLaMA), on
# the dual codebook (3072 paired codes, one index): semantic ‖ pixel codes (32-d).
# Needs work_dirs/dual_codebook_shapes/export (demo/baselines/dual_codebook_shapes.py) and work_dirs/tiny_llama.
_base_ = ['../llava_sghc_shapes.py']
model = dict(vision=dict(tokenizer='work_dirs/dual_codebook_shapes/export'))
