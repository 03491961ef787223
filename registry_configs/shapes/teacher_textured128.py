# GPU reference, textured world, stage 0: the tiny SigLIP teacher at 128 px (16x16 patches)
# on captions that name each shape's pattern family.
_base_ = ['../demo/shapes_siglip.py']
_data = dict(type='ShapesCaptionDataset', seed=0, resolution=128, texture=True)
model = dict(vision_config=dict(image_size=128),
             vocab_dataset=dict(_data, start=0, length=2000), max_text_len=32)
train_dataloader = dict(batch_size=128, num_workers=6, dataset=dict(_data, start=0, length=50000))
test_cfg = dict(retrieval=dict(dataset=dict(_data, start=100000, length=500)))
param_scheduler = dict(warmup_steps=50)
train_cfg = dict(max_steps=1000, log_interval=50)
checkpoint = dict(interval=500)
