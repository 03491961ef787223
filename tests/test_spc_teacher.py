"""Stage-1 distillation: the cosine target is always the frozen teacher's features, the
semantic encoder's initialisation and training are separate options, the teacher stays
out of exports, and a frozen encoder loaded from the teacher folder is its own teacher
(one forward)."""
import copy
import shutil

import pytest
import torch

from tests.tiny_semhitok import config, images
from unimm.models.base import PretrainedMixin
from unimm.models.encoders.semantic import SemanticEncoder
from unimm.models.losses import cosine_loss
from unimm.registry import MODELS


def spc(folder, init='teacher', train=False, **extra):
    cfg = dict(config(folder, train_semantic_encoder=train), **extra)
    cfg['semantic_encoder']['init'] = init
    torch.manual_seed(1)  # the teacher fixture's seed would redraw the teacher's weights
    return MODELS.build(cfg)


def teacher_features(folder, x):
    with torch.no_grad():
        return SemanticEncoder(pretrained=folder)(x)


def captured_target(model, x, monkeypatch):
    """The target ``model``'s stage-1 cosine loss is computed against."""
    import unimm.models.tokenizers.semhitok as semhitok
    seen = []
    monkeypatch.setattr(semhitok, 'cosine_loss', lambda p, t: seen.append(t) or cosine_loss(p, t))
    model.train()({'image': x})
    return seen[0]


def count_tower_forwards(monkeypatch):
    calls = []
    forward = SemanticEncoder.forward
    monkeypatch.setattr(SemanticEncoder, 'forward',
                        lambda self, x: calls.append(self) or forward(self, x))
    return calls


@pytest.mark.parametrize('init', ['teacher', 'random'])
@pytest.mark.parametrize('train', [False, True])
def test_every_init_and_training_combination_targets_the_teacher(teacher, tmp_path,
                                                                 monkeypatch, init, train):
    model = spc(teacher, init, train)
    x = images()
    assert torch.equal(captured_target(model, x, monkeypatch), teacher_features(teacher, x))
    encoder = list(model.semantic_encoder.parameters())
    assert all(p.requires_grad == train for p in encoder)
    if train:  # the cosine loss reaches the encoder
        grads = torch.autograd.grad(model({'image': x})['loss_cosine'], encoder,
                                    allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads)
    model.save_pretrained(tmp_path / 'spc')
    torch.manual_seed(1)
    sghc = MODELS.build(config(teacher, stage='sghc', init_from=str(tmp_path / 'spc')))
    assert not any(p.requires_grad for p in sghc.semantic_encoder.parameters())
    assert sghc.teacher is None  # later stages build no teacher


def test_random_trainable_encoder_is_distilled_and_teacher_stays_fixed(teacher, tmp_path):
    model = spc(teacher, 'random', train=True,
                teacher=dict(type='SemanticEncoder', pretrained=teacher))
    tower = model.teacher.net
    before = copy.deepcopy(tower.state_dict())
    encoder_before = copy.deepcopy(model.semantic_encoder.state_dict())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    x = images(16)
    model.train()
    losses = []
    for _ in range(20):
        loss = model({'image': x})['loss_cosine']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses
    assert not tower.training and all(not p.requires_grad and p.grad is None
                                      for p in tower.parameters())
    assert all(torch.equal(before[k], v) for k, v in tower.state_dict().items())
    assert any(not torch.equal(encoder_before[k], v)
               for k, v in model.semantic_encoder.state_dict().items())

    # the export carries no teacher and loads without the teacher folder
    model.eval()
    ids = model.encode(x)
    model.save_pretrained(tmp_path / 'spc')
    from safetensors.torch import load_file
    assert not any(k.startswith('teacher') for k in load_file(tmp_path / 'spc' /
                                                              'model.safetensors'))
    assert teacher not in (tmp_path / 'spc' / 'config.json').read_text()
    moved = tmp_path / 'teacher_moved'
    shutil.move(teacher, moved)
    try:
        loaded = PretrainedMixin.from_pretrained(tmp_path / 'spc').eval()
        assert torch.equal(loaded.encode(x), ids)
        with pytest.raises(RuntimeError, match='needs a teacher'):
            loaded.train()({'image': x})
    finally:
        shutil.move(moved, teacher)


@pytest.mark.parametrize('init,train,forwards', [('teacher', False, 1), ('teacher', True, 2),
                                                 ('random', False, 2)])
def test_frozen_encoder_from_the_teacher_folder_is_its_own_teacher(teacher, monkeypatch, init,
                                                                   train, forwards):
    x = images()
    frozen = SemanticEncoder(pretrained=teacher, init='teacher', frozen=True)
    with torch.no_grad():  # the premise of computing the target once
        assert torch.equal(frozen(x), teacher_features(teacher, x))
    model = spc(teacher, init, train).train()
    calls = count_tower_forwards(monkeypatch)
    model({'image': x})
    assert len(calls) == forwards
    assert model.teacher.is_encoder == (forwards == 1)


def test_shared_teacher_export_keeps_the_stage1_loss(teacher, tmp_path):
    model = spc(teacher).eval()
    x = images()
    with torch.no_grad():
        loss = model({'image': x})['loss_cosine']
    model.save_pretrained(tmp_path / 'spc')
    loaded = PretrainedMixin.from_pretrained(tmp_path / 'spc').eval()
    assert loaded.teacher.is_encoder
    with torch.no_grad():
        assert torch.equal(loaded({'image': x})['loss_cosine'], loss)


def test_encoder_is_not_its_own_teacher_when_trained(teacher):
    with pytest.raises(ValueError, match='frozen semantic encoder'):
        spc(teacher, train=True, teacher='semantic_encoder')
    with pytest.raises(ValueError, match='teacher must stay frozen'):
        spc(teacher, teacher=dict(type='SemanticEncoder', pretrained=teacher, frozen=False))


def test_dual_codebook_random_encoder_targets_the_teacher(teacher, monkeypatch):
    import unimm.models.tokenizers.dual_codebook as dual
    from tests.tiny_baselines import configs
    cfg = configs(teacher)['dual_codebook']
    cfg['semantic_encoder'] = dict(cfg['semantic_encoder'], init='random', frozen=False)
    torch.manual_seed(0)
    model = MODELS.build(cfg).train()
    seen = []
    monkeypatch.setattr(dual, 'cosine_loss', lambda p, t: seen.append(t) or cosine_loss(p, t))
    x = images()
    model({'image': x})
    assert torch.equal(seen[0], teacher_features(teacher, x))
    assert all(p.requires_grad for p in model.semantic_encoder.parameters())
