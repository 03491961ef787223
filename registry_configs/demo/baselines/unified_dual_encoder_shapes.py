# Unified demo as demo/unified_shapes.py (one tiny LLaMA, 50/50 shapes VQA and pre-tokenised
# caption-image pairs), on Janus-style dual encoders: the demo teacher's continuous features (96-d) for understanding, the pixel VQ's 3072 ids for generation.
# Needs work_dirs/dual_encoder_shapes/export, work_dirs/tiny_llama and the pairs pre-tokenised by
# t2i_dual_encoder_shapes.py's command (work_dirs/t2i_dual_encoder_shapes_tokens).
_base_ = ['../unified_shapes.py']
model = dict(image_tokenizer='work_dirs/dual_encoder_shapes/export')
train_dataloader = dict(dataset=dict(generation=dict(urls='work_dirs/t2i_dual_encoder_shapes_tokens')))
