# GPU reference, flat world, generation: t2i_flat64.py trained exactly alike on
# joint_flat64's ids (12,288 visual ids, 64 per image), from the caption-image pairs
# pre-tokenised with that tokenizer into work_dirs/t2i_joint_flat64_tokens
# (tools/shapes_reference.py).
_base_ = ['./t2i_flat64.py']
model = dict(image_tokenizer='work_dirs/joint_flat64/export')
train_dataloader = dict(dataset=dict(urls='work_dirs/t2i_joint_flat64_tokens'))
