# Unified demo as demo/unified_shapes.py (one tiny LLaMA, 50/50 shapes VQA and pre-tokenised
# caption-image pairs), on the dual codebook (3072 paired codes, one index): semantic ‖ pixel codes (32-d).
# Needs work_dirs/dual_codebook_shapes/export, work_dirs/tiny_llama and the pairs pre-tokenised by
# t2i_dual_codebook_shapes.py's command (work_dirs/t2i_dual_codebook_shapes_tokens).
_base_ = ['../unified_shapes.py']
model = dict(image_tokenizer='work_dirs/dual_codebook_shapes/export')
train_dataloader = dict(dataset=dict(generation=dict(urls='work_dirs/t2i_dual_codebook_shapes_tokens')))
