# Shapes-world images with captions, 64 px; scenes 0..49999 train, 100000.. held out.
train_dataloader = dict(
    batch_size=64, num_workers=1, shuffle=True,
    dataset=dict(type='ShapesCaptionDataset', seed=0, resolution=64, start=0, length=50000))
test_cfg = dict(
    retrieval=dict(type='RetrievalEvaluator', batch_size=100,
                   dataset=dict(type='ShapesCaptionDataset', seed=0, resolution=64,
                                start=100000, length=500)))
