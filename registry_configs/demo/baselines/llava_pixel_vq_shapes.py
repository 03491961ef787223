# Understanding demo as demo/llava_sghc_shapes.py (shapes VQA, mlp2x_gelu, tiny LLaMA), on
# the pixel VQ (3072 x 8, no teacher): its quantised codes (8-d).
# Needs work_dirs/pixel_vq_shapes/export (demo/baselines/pixel_vq_shapes.py) and work_dirs/tiny_llama.
_base_ = ['../llava_sghc_shapes.py']
model = dict(vision=dict(tokenizer='work_dirs/pixel_vq_shapes/export'))
