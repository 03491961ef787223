# Textured shapes-world images for tokenizer training (128 px: 16x16 patches of 8 px, each
# holding a few pattern periods); reconstruction is tested on held-out scenes 100000..
# (PSNR, SSIM, rFID, codebook usage, attribute and pattern accuracy, a PNG grid).
train_dataloader = dict(
    batch_size=32, num_workers=1, shuffle=True,
    dataset=dict(type='ShapesCaptionDataset', seed=0, resolution=128, texture=True,
                 start=0, length=50000))
test_cfg = dict(
    recon=dict(type='ReconstructionEvaluator', batch_size=50, shapes_scorer=True,
               dataset=dict(type='ShapesCaptionDataset', seed=0, resolution=128, texture=True,
                            start=100000, length=500)))
