# Stage 1 at 384 px: the semantic-priority codebook on frozen SigLIP-so400m/14 features
# (27 x 27 = 729 tokens: SigLIP's stride-14 patch convolution floors 384 / 14, leaving the
# last 6 pixel rows and columns out). Put a copy of google/siglip-so400m-patch14-384 at
# checkpoints/siglip-so400m-patch14-384; everything else is spc_siglip_l16.py's.
_base_ = ['./spc_siglip_l16.py']
model = dict(
    semantic_encoder=dict(pretrained='checkpoints/siglip-so400m-patch14-384'),
    # so400m's width is 1152 (16 heads of 72)
    semantic_decoder=dict(width=1152, num_heads=16, out_dim=1152, num_tokens=729))
train_dataloader = dict(dataset=dict(transform=dict(size=384)))
test_cfg = dict(recon=dict(dataset=dict(transform=dict(size=384))))
