"""The 384 px recipes (SigLIP-so400m/14, 27 x 27 = 729 tokens) at their real geometry: the
recipes' image and patch sizes, token counts and pixel-branch settings are kept, only the
widths, depths and codebook sizes shrink and the SigLIP folder is a tiny one with
so400m's 384 px / 14 px geometry. The semantic and pixel grids agree, the stage-2 step
runs on 384 px images, and decoded images come back at 384 px."""
import pytest
import torch
from transformers import SiglipVisionConfig, SiglipVisionModel

from unimm.engine.config import load_config
from unimm.registry import MODELS

GRID = 27


@pytest.fixture(scope='module')
def so400m_shaped(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp('siglip_so400m_shaped')
    SiglipVisionModel(SiglipVisionConfig(
        image_size=384, patch_size=14, hidden_size=32, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=2)).save_pretrained(folder)
    return str(folder)


def narrow(model, siglip):
    """The recipe's model config with small widths and codebooks; sizes untouched."""
    model = dict(model, init_from=None)
    model['semantic_encoder'] = dict(model['semantic_encoder'], pretrained=siglip)
    model['semantic_decoder'] = dict(model['semantic_decoder'], width=32, depth=1, num_heads=2,
                                     out_dim=32)
    model['semantic_quantizer'] = dict(model['semantic_quantizer'], num_codes=16,
                                       kmeans_init=False)
    for key in ('pixel_encoder', 'pixel_decoder'):
        if key in model:
            model[key] = dict(model[key], preset=None, width=32, depth=1, num_heads=2)
    if 'pixel_quantizer' in model:
        model['pixel_quantizer'] = dict(model['pixel_quantizer'], num_semantic_codes=16)
    if 'pixel_loss' in model:
        model['pixel_loss'] = dict(model['pixel_loss'], perceptual_weight=0.0, lpips=None)
    return model


def test_recipes_name_the_27x27_geometry():
    spc = load_config('registry_configs/spc_siglip_so400m14_384.py')
    sghc = load_config('registry_configs/sghc_vitb_so400m14_384.py')
    enhance = load_config('registry_configs/enhance_decoder_vitl_so400m14_384.py')
    for cfg in (spc, sghc, enhance):
        assert cfg.model.semantic_decoder.num_tokens == GRID * GRID
        assert cfg.model.semantic_encoder.pretrained == 'checkpoints/siglip-so400m-patch14-384'
        assert cfg.train_dataloader.dataset.transform.size == 384
        assert cfg.test_cfg.recon.dataset.transform.size == 384
    for cfg in (sghc, enhance):
        enc, dec = cfg.model.pixel_encoder, cfg.model.pixel_decoder
        assert (enc.image_size, enc.patch_size, enc.remainder) == (384, 14, 'resize')
        assert (dec.image_size, dec.patch_size) == (384, 14)
    assert sghc.model.init_from == 'work_dirs/spc_siglip_so400m14_384/export'
    assert enhance.model.init_from == 'work_dirs/sghc_vitb_so400m14_384/export'
    assert (enhance.model.pixel_decoder.type, enhance.model.pixel_decoder.preset) == (
        'EnhanceDecoder', 'large')


def test_stage1_and_stage2_run_at_384_px(so400m_shaped):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 384, 384) * 2 - 1
    spc = MODELS.build(narrow(load_config('registry_configs/spc_siglip_so400m14_384.py').model,
                              so400m_shaped))
    assert spc.semantic_encoder.grid_size == (GRID, GRID) and spc.num_tokens == GRID * GRID
    losses = spc({'image': images})
    assert all(torch.isfinite(v).all() for k, v in losses.items() if k.startswith('loss'))

    cfg = load_config('registry_configs/sghc_vitb_so400m14_384.py')
    model = MODELS.build(narrow(cfg.model, so400m_shaped))
    assert model.pixel_encoder.grid_size == model.semantic_encoder.grid_size == (GRID, GRID)
    assert model.pixel_decoder.grid_size == (GRID, GRID)
    model.train()
    losses = model({'image': images})
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total)
    total.backward()  # the pixel branch trains through the 378 <-> 384 px resizes
    assert model.pixel_encoder.patch_embed.weight.grad.abs().sum() > 0
    model.eval()
    ids = model.encode(images)
    assert ids.shape == (2, GRID * GRID)
    assert int(ids.max()) < model.vocab_size
    recon = model.decode(ids)
    assert recon.shape == (2, 3, 384, 384) and torch.isfinite(recon).all()
    # the semantic half of every id is the stage-1 code of the same image
    torch.testing.assert_close(model.semantic_ids(ids), model.semantic(images)[1].ids)
