"""A tiny SemHiTok (32 px, K = 32 semantic codes, m = 4 sub-codes) and its inputs, shared by
the test modules that build one."""
import copy

import torch

from unimm.registry import MODELS


K, M, D = 32, 4, 8


def config(teacher, stage='spc', init_from=None, fusion='channel', decoder_depth=1, **extra):
    cfg = dict(
        type='SemHiTok', stage=stage, init_from=init_from, fusion=fusion,
        semantic_encoder=dict(type='SemanticEncoder', pretrained=teacher),
        semantic_quantizer=dict(type='SemanticPriorityCodebook', num_codes=K, dim=D,
                                kmeans_iters=2),
        semantic_decoder=dict(type='SemanticDecoder', in_dim=D, width=32, depth=1,
                              num_heads=2, out_dim=32, num_tokens=16))
    if stage != 'spc':
        cfg.update(
            pixel_encoder=dict(type='ViTEncoder', image_size=32, patch_size=8, width=32,
                               depth=1, num_heads=2, out_dim=D),
            pixel_quantizer=dict(type='HierarchicalCodebook', num_semantic_codes=K,
                                 sub_codes=M, dim=D),
            pixel_decoder=dict(type='ViTDecoder', image_size=32, patch_size=8,
                               in_dim=2 * D if fusion == 'channel' else D, width=32,
                               depth=decoder_depth, num_heads=2,
                               num_tokens=32 if fusion == 'length' else None),
            pixel_loss=dict(type='PixelReconstructionLoss', l1_weight=1.0, l2_weight=1.0,
                            perceptual_weight=0.0, lpips=None))
    cfg.update(extra)
    return cfg


def train_steps(model, images, steps=3, lr=1e-2):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    model.train()
    for _ in range(steps):
        out = model({'image': images})
        loss = sum(v for k, v in out.items() if k.startswith('loss'))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return out


def images(n=6, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def stage1(teacher, tmp_path):
    torch.manual_seed(0)
    model = MODELS.build(config(teacher))
    before = copy.deepcopy(model.semantic_encoder.state_dict())
    out = train_steps(model, images())
    assert {'loss_cosine', 'loss_commit'} <= set(out)
    assert all(torch.equal(before[k], v) for k, v in model.semantic_encoder.state_dict().items())
    assert bool(model.semantic_quantizer.initted)  # k-means ran on the first batch
    model.save_pretrained(tmp_path / 'spc')
    return model
