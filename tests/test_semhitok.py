"""SemHiTok assembly: the token id contract, encode/decode, save/load without the teacher
folder, the freezing contract of stages 2 and 3 (bit-identical stage-1 weights, EMA
codebook and semantic ids) and the stage-3 EnhanceDecoder."""
import shutil

import pytest
import torch

from tests.tiny_semhitok import K, M, config, images, stage1, train_steps
from unimm.models.base import PretrainedMixin
from unimm.registry import MODELS


def test_stages_keep_stage1_bit_identical(teacher, tmp_path):
    spc = stage1(teacher, tmp_path).eval()
    x = images(seed=1)
    spc_ids = spc.encode(x)

    torch.manual_seed(1)
    sghc = MODELS.build(config(teacher, stage='sghc', init_from=str(tmp_path / 'spc')))
    stage1_keys = [k for k in sghc.state_dict() if k.startswith('semantic_')]
    frozen = {k: sghc.state_dict()[k].clone() for k in stage1_keys}
    assert all(torch.equal(frozen[k], spc.state_dict()[k]) for k in stage1_keys)
    table = {k: v.clone() for k, v in sghc.pixel_quantizer.state_dict().items()}
    out = train_steps(sghc, images(seed=2), steps=4)
    assert {'loss_l1', 'loss_l2', 'loss_codebook'} <= set(out)
    after = sghc.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in stage1_keys)  # EMA buffers too
    assert any(not torch.equal(v, sghc.pixel_quantizer.state_dict()[k]) for k, v in table.items())
    sghc.eval()
    ids = sghc.encode(x)
    assert torch.equal(ids // M, spc_ids)  # semantic ids unchanged, via the id contract
    assert int(ids.max()) < K * M
    sghc.save_pretrained(tmp_path / 'sghc')

    torch.manual_seed(2)
    cfg = config(teacher, stage='enhance', init_from=str(tmp_path / 'sghc'),
                 init_exclude=['pixel_decoder.'], decoder_depth=2)
    cfg['pixel_decoder']['type'] = 'EnhanceDecoder'  # as the stage-3 recipes build it
    enh = MODELS.build(cfg)
    keep = {k: v.clone() for k, v in enh.state_dict().items()
            if not k.startswith('pixel_decoder.')}
    assert all(torch.equal(v, sghc.state_dict()[k]) for k, v in keep.items())
    train_steps(enh, images(seed=3), steps=3)
    assert all(torch.equal(v, enh.state_dict()[k]) for k, v in keep.items())
    assert [n for n, p in enh.named_parameters() if p.requires_grad] == \
        [n for n, _ in enh.named_parameters() if n.startswith('pixel_decoder.')]
    assert torch.equal(enh.eval().encode(x), ids)
    enh.save_pretrained(tmp_path / 'enhance')
    again = PretrainedMixin.from_pretrained(tmp_path / 'enhance').eval()
    assert type(again.pixel_decoder).__name__ == 'EnhanceDecoder'
    assert torch.equal(again.decode(ids), enh.decode(ids))


def test_enhance_decoder_is_a_vit_l_unless_sized():
    from unimm.models.decoders.enhance import EnhanceDecoder
    from unimm.models.decoders.vit import ViTDecoder
    with torch.device('meta'):
        large = MODELS.build(dict(type='EnhanceDecoder', image_size=256, patch_size=16))
        base = MODELS.build(dict(type='EnhanceDecoder', preset='base'))
    assert isinstance(large, EnhanceDecoder) and isinstance(large, ViTDecoder)
    assert (large.width, large.depth, large.num_heads) == (1024, 24, 16)
    assert (base.width, base.depth, base.num_heads) == (768, 12, 12)
    small = dict(image_size=32, patch_size=8, in_dim=16, width=32, depth=2, num_heads=2)
    torch.manual_seed(0)
    enhance = EnhanceDecoder(**small)
    torch.manual_seed(0)
    plain = ViTDecoder(**small)
    codes = torch.randn(2, 16, 16)
    assert torch.equal(enhance(codes), plain(codes))  # the same network, in its own role


@pytest.mark.parametrize('fusion', ['channel', 'length', 'texture', 'semantic'])
def test_encode_decode_and_save_load_without_teacher(teacher, tmp_path, fusion):
    stage1(teacher, tmp_path)
    torch.manual_seed(0)
    model = MODELS.build(config(teacher, stage='sghc', init_from=str(tmp_path / 'spc'),
                                fusion=fusion))
    train_steps(model, images(), steps=2)
    model.eval()
    x = images(seed=5)
    ids = model.encode(x)
    assert ids.shape == (6, 16) and ids.dtype == torch.long
    # decode(ids) is exactly the decoder on the codes the quantizers chose
    feats, sem = model.semantic(x)
    tex = model.pixel_quantizer(model.pixel_encoder(x), semantic_ids=sem.ids)
    assert torch.equal(tex.ids, ids)
    from unimm.models.tokenizers.fusion import fuse
    direct = model.pixel_decoder(fuse(fusion, sem.quantized, tex.quantized))
    assert torch.allclose(model.decode(ids), direct, atol=1e-5)
    # LLM features: semantic ‖ texture codes
    f = model.features(x)
    assert torch.allclose(f, torch.cat([model.semantic_quantizer.lookup(ids // M),
                                        model.pixel_quantizer.lookup(ids)], -1), atol=1e-5)
    # the saved folder rebuilds without the teacher folder
    model.save_pretrained(tmp_path / 'saved')
    moved = tmp_path / 'teacher_moved'
    shutil.copytree(teacher, moved)
    shutil.rmtree(teacher)
    try:
        loaded = PretrainedMixin.from_pretrained(tmp_path / 'saved').eval()
        assert torch.equal(loaded.encode(x), ids)
        assert torch.equal(loaded.decode(ids), model.decode(ids))
    finally:
        shutil.copytree(moved, teacher)


def test_bad_configs_fail_clearly(teacher, tmp_path):
    with pytest.raises(ValueError, match="stage 'sghc' needs pixel_decoder and pixel_loss"):
        MODELS.build(dict(config(teacher), stage='sghc'))
    with pytest.raises(FileNotFoundError, match='previous stage'):
        MODELS.build(config(teacher, stage='sghc', init_from=str(tmp_path / 'none')))
    with pytest.raises(ValueError, match='fusion'):
        MODELS.build(config(teacher, fusion='sideways'))


@pytest.mark.parametrize('name', ['spc_siglip_l16', 'sghc_vitb', 'enhance_decoder_vitl'])
def test_paper_configs_check_and_name_the_missing_teacher(name):
    from unimm.engine.config import load_config
    cfg = load_config(f'registry_configs/{name}.py')
    assert cfg.model.semantic_quantizer.num_codes == 16384
    if name != 'spc_siglip_l16':
        assert cfg.model.pixel_quantizer.sub_codes == 12
    with pytest.raises(FileNotFoundError, match='siglip-large-patch16-256.*not a Hugging Face'):
        MODELS.build(cfg.model, path='model')
