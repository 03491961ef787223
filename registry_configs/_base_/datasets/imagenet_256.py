# ImageNet at 256 px (ImageNet layout under data/imagenet/{train,val}); reconstruction is
# evaluated on the 50k validation images (rFID against the validation set itself).
train_dataloader = dict(
    batch_size=32, num_workers=8, shuffle=True,
    dataset=dict(type='ImageFolderDataset', root='data/imagenet/train',
                 transform=dict(type='ImageTransform', size=256, crop='random',
                                random_flip=True)))
test_cfg = dict(
    recon=dict(type='ReconstructionEvaluator', batch_size=64,
               dataset=dict(type='ImageFolderDataset', root='data/imagenet/val',
                            transform=dict(type='ImageTransform', size=256, crop='center'))))
