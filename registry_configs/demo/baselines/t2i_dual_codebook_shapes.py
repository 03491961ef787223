# Text-to-image demo as demo/t2i_shapes.py (tiny Qwen2, flat head, CFG), emitting the ids of
# demo/baselines/dual_codebook_shapes.py (3,072 visual tokens, 64 per image). Pre-tokenise first:
#   python tools/pretokenize.py registry_configs/demo/baselines/t2i_dual_codebook_shapes.py \
#       --source _source_dataset --out work_dirs/t2i_dual_codebook_shapes_tokens
_base_ = ['../t2i_shapes.py']
model = dict(image_tokenizer='work_dirs/dual_codebook_shapes/export')
train_dataloader = dict(dataset=dict(urls='work_dirs/t2i_dual_codebook_shapes_tokens'))
