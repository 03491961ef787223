"""JointTokenizer.init_from: MUSE-VL's "joint texture training from a trained SPC" (the
paper's Tab. 4 row) starts from the SPC's encoder, projection, codebook and semantic
decoder, with the SPC's usage as the restart history."""
import json
import shutil

import pytest
import torch

from tests import tiny_baselines as tb
from tests import tiny_semhitok as ts
from unimm.models.base import load_unimm_folder
from unimm.registry import MODELS


def joint_config(teacher, spc, num_codes=ts.K, threshold=0.1):
    return dict(type='JointTokenizer', encoder=tb.tower(teacher, frozen=False),
                teacher=tb.tower(teacher),
                quantizer=dict(type='VectorQuantizer', num_codes=num_codes, dim=ts.D,
                               dead_code_threshold=threshold),
                semantic_decoder=tb.semantic_decoder(ts.D),
                pixel_decoder=tb.vit('ViTDecoder', in_dim=ts.D), pixel_loss=tb.PIXEL_LOSS,
                init_from=spc)


@pytest.fixture
def spc_export(teacher, tmp_path):
    """A trained tiny SPC whose codes 0..3 have no usage and the others plenty."""
    model = ts.stage1(teacher, tmp_path)
    usage = torch.full((ts.K,), 100.0)
    usage[:4] = 0.0
    model.semantic_quantizer.cluster_size.copy_(usage)
    model.save_pretrained(tmp_path / 'spc')
    return model.eval(), str(tmp_path / 'spc')


def test_starts_from_the_spc_and_gives_its_ids(teacher, spc_export):
    spc, folder = spc_export
    joint = MODELS.build(joint_config(teacher, folder)).eval()
    images = ts.images()
    assert torch.equal(joint.encode(images), spc.encode(images))
    assert torch.allclose(joint.quantizer.codes(), spc.semantic_quantizer.codebook, atol=1e-6)
    assert torch.equal(joint.quantizer.usage, spc.semantic_quantizer.cluster_size)
    for a, b in ((joint.encoder, spc.semantic_encoder), (joint.proj, spc.semantic_proj),
                 (joint.semantic_decoder, spc.semantic_decoder)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                     b.state_dict().values()))
    assert all(p.requires_grad for p in joint.encoder.parameters())  # texture trains into it


def test_restarts_act_on_the_spc_usage(teacher, spc_export):
    _, folder = spc_export
    torch.manual_seed(0)
    joint = MODELS.build(joint_config(teacher, folder))
    before = joint.quantizer.codes().clone()
    out = ts.train_steps(joint, ts.images(), steps=1)
    # 96 patches: a code the SPC never used stays below 0.1 x the mean usage (~100) after
    # one step; a code the SPC used 100 times per step stays above it
    assert out['vq/dead_restarted'].item() == 4
    moved = (joint.quantizer.codes() - before).norm(dim=-1)
    assert moved[:4].min() > moved[4:].max()


def test_export_reloads_without_the_spc(teacher, spc_export, tmp_path):
    _, folder = spc_export
    joint = MODELS.build(joint_config(teacher, folder)).eval()
    joint.save_pretrained(tmp_path / 'joint')
    assert json.load(open(tmp_path / 'joint' / 'config.json'))['init_from'] is None
    shutil.rmtree(folder)
    loaded = load_unimm_folder(str(tmp_path / 'joint'), 'joint').eval()
    images = ts.images()
    assert torch.equal(loaded.encode(images), joint.encode(images))


def test_refuses_what_does_not_fit(teacher, spc_export, tmp_path):
    _, folder = spc_export
    with pytest.raises(ValueError, match='does not fit'):
        MODELS.build(joint_config(teacher, folder, num_codes=ts.K // 2))
    other = MODELS.build(tb.pixel_vq())
    other.save_pretrained(tmp_path / 'pixel_vq')
    with pytest.raises(ValueError, match='not an SPC export'):
        MODELS.build(joint_config(teacher, str(tmp_path / 'pixel_vq')))
    with pytest.raises(FileNotFoundError):
        MODELS.build(joint_config(teacher, str(tmp_path / 'nowhere')))
