# A tiny SigLIP for 64 px shapes-world images (stage 0 teacher of the demo): 8x8 patches.
model = dict(
    type='SiglipTeacher',
    vision_config=dict(image_size=64, patch_size=8, hidden_size=96, intermediate_size=192,
                       num_hidden_layers=3, num_attention_heads=4),
    text_config=dict(hidden_size=96, intermediate_size=192, num_hidden_layers=2,
                     num_attention_heads=4, projection_size=96),
    vocab_dataset=dict(type='ShapesCaptionDataset', seed=0, resolution=64, start=0, length=2000),
    max_text_len=24)
