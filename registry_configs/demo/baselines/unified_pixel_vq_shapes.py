# Unified demo as demo/unified_shapes.py (one tiny LLaMA, 50/50 shapes VQA and pre-tokenised
# caption-image pairs), on the pixel VQ (3072 x 8, no teacher): its quantised codes (8-d).
# Needs work_dirs/pixel_vq_shapes/export, work_dirs/tiny_llama and the pairs pre-tokenised by
# t2i_pixel_vq_shapes.py's command (work_dirs/t2i_pixel_vq_shapes_tokens).
_base_ = ['../unified_shapes.py']
model = dict(image_tokenizer='work_dirs/pixel_vq_shapes/export')
train_dataloader = dict(dataset=dict(generation=dict(urls='work_dirs/t2i_pixel_vq_shapes_tokens')))
