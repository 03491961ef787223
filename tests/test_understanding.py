"""UnderstandingMLLM end to end on the demo tokenizer: image features at the <image>
positions, a short demo train that makes held-out answers far likelier, export
round-trip, batched == one-by-one generation, tools/chat.py, phase-1 freezing, and the
lmms-eval model (registry, tasks agreeing with the library, loglikelihood)."""
import json
import os

import pytest
import torch
from torch import nn

from tests.conftest import run_tool
from unimm.apis.tiny_lm import make_tiny_lm
from unimm.datasets.shapes import ShapesWorld
from unimm.datasets.transforms import pil_to_tensor
from unimm.evaluation.lmms import TASKS_DIR
from unimm.evaluation.vqa import question_type
from unimm.models.layers.vit_blocks import sincos_2d
from unimm.models.mllm.conversation import IMAGE_TOKEN_INDEX, VICUNA_SYSTEM
from unimm.models.mllm.projector import MLPProjector
from unimm.models.mllm.understanding import UnderstandingMLLM
from unimm.registry import MODELS

CONFIG = 'registry_configs/demo/llava_sghc_shapes.py'
HELD_OUT = 100000
TASKS = os.path.join(TASKS_DIR, 'shapes_vqa')


@pytest.fixture(scope='module')
def tiny_llama(tmp_path_factory):
    return make_tiny_lm(str(tmp_path_factory.mktemp('llama')), extra_texts=[VICUNA_SYSTEM])


@pytest.fixture(scope='module')
def trained(demo_tokenizer, tiny_llama, tmp_path_factory):
    """The SGHC demo config trained briefly: its export folder."""
    work = tmp_path_factory.mktemp('llava')
    run_tool('train', CONFIG, '--work-dir', work, '--cfg-options',
             f'model.vision.tokenizer={demo_tokenizer}', f'model.llm={tiny_llama}',
             f'train_dataloader.dataset.tokenizer={tiny_llama}', 'train_dataloader.num_workers=0',
             'train_dataloader.dataset.length=3000', 'train_cfg.max_steps=90',
             'log_cfg.tensorboard=False')
    return str(work / 'export')


@pytest.fixture(scope='module')
def model(trained):
    return UnderstandingMLLM.from_pretrained(trained).eval()


def held_out(n, start=HELD_OUT):
    world = ShapesWorld(0, 64)
    qa = [(i, q, a) for i in range(start, start + n) for q, a in world.vqa(i)]
    images = {i: pil_to_tensor(world.image(i)) for i in range(start, start + n)}
    return qa, images


def test_image_features_land_exactly_at_the_placeholders(model):
    conv = model.single_turn('how many shapes are there?')
    ids = torch.tensor([model.prompt_ids(conv)] * 2)
    _, images = held_out(2)
    imgs = torch.stack(list(images.values()))
    with torch.no_grad():
        embeds = model.embed(ids, imgs)
        feats = model.projector(model.vision(imgs))
        tokens = model.llm.get_input_embeddings()(ids.clamp(min=0))
    where = ids == IMAGE_TOKEN_INDEX
    assert where.sum() == 2 * model.num_image_tokens == 128
    for row in range(2):
        assert torch.equal(embeds[row][where[row]], feats[row])  # image `row`, in patch order
        assert torch.equal(embeds[row][~where[row]], tokens[row][~where[row]])
    with pytest.raises(ValueError, match='64 features each'):
        model.embed(ids, imgs[:1])


def test_demo_learns_held_out_vqa(trained, model, tiny_llama, tmp_path):
    """tools/test.py --task vqa runs, and the short train made the true answers of
    held-out questions far more likely than before training (accuracy above the blind
    baseline needs much longer runs: docs/understanding.md)."""
    out = run_tool('test', CONFIG, trained, '--task', 'vqa', '--work-dir', tmp_path,
                   '--cfg-options', 'test_cfg.vqa.max_questions=100')
    res = json.loads((tmp_path / 'test_vqa.json').read_text())
    assert res['num_questions'] == 100 and '"accuracy"' in out
    assert 0 < res['chance'] < res['blind_baseline'] < 1
    cfg = json.load(open(os.path.join(trained, 'config.json')))
    untrained = MODELS.build(dict(cfg, vision=os.path.join(trained, 'vision'), llm=tiny_llama,
                                  tokenizer=None, projector_from=None)).eval()
    qa, images = held_out(4)
    convs = [model.single_turn(q) for _, q, _ in qa]
    imgs = torch.stack([images[i] for i, _, _ in qa])
    answers = [a for _, _, a in qa]
    before = sum(ll for ll, _ in untrained.loglikelihood(convs, answers, imgs)) / len(qa)
    after = sum(ll for ll, _ in model.loglikelihood(convs, answers, imgs)) / len(qa)
    assert after > before / 5, (before, after)  # e.g. -12 nats -> -1.5 nats per answer


def test_export_round_trips(model, tmp_path):
    model.save_pretrained(tmp_path / 'again')
    again = UnderstandingMLLM.from_pretrained(str(tmp_path / 'again')).eval()
    qa, images = held_out(1)
    convs = [model.single_turn(q) for _, q, _ in qa[:3]]
    imgs = torch.stack([images[i] for i, _, _ in qa[:3]])
    answers = [a for _, _, a in qa[:3]]
    assert model.loglikelihood(convs, answers, imgs) == again.loglikelihood(convs, answers, imgs)


def test_batched_generation_equals_one_by_one(model):
    qa, images = held_out(2)
    by_length = sorted(qa, key=lambda r: len(r[1]))
    picks = [by_length[0], by_length[-1], by_length[1], by_length[-2]]  # short and long prompts
    convs = [model.single_turn(q) for _, q, _ in picks]
    imgs = torch.stack([images[i] for i, _, _ in picks])
    assert len({len(model.prompt_ids(c)) for c in convs}) > 1  # left padding is exercised
    batched = model.generate(convs, imgs, max_new_tokens=6)
    single = [model.generate([c], imgs[k:k + 1], max_new_tokens=6)[0]
              for k, c in enumerate(convs)]
    assert batched == single


def test_chat_tool_answers_like_the_library(trained, model, tmp_path):
    world = ShapesWorld(0, 64)
    world.image(HELD_OUT).save(tmp_path / 'x.png')
    question = world.vqa(HELD_OUT)[0][0]
    out = run_tool('chat', CONFIG, trained, '--image', tmp_path / 'x.png', '--question',
                   question, '--max-new-tokens', '6')
    expected = model.generate([model.single_turn(question)],
                              pil_to_tensor(world.image(HELD_OUT))[None], max_new_tokens=6)[0]
    assert out.strip().splitlines()[-1].strip() == expected


def test_phase_one_trains_only_the_projector_and_loads_it_in_phase_two(trained, model):
    cfg = json.load(open(os.path.join(trained, 'config.json')))
    cfg.update(vision=os.path.join(trained, 'vision'), llm=os.path.join(trained, 'llm'),
               tokenizer=None, train_llm=False, projector_from=None)
    phase1 = MODELS.build(cfg).train()
    trainable = {n.split('.')[0] for n, p in phase1.named_parameters() if p.requires_grad}
    assert trainable == {'projector'} and not phase1.llm.training
    phase2 = MODELS.build(dict(cfg, train_llm=True, projector_from=trained)).train()
    assert phase2.llm.training and all(p.requires_grad for p in phase2.llm.parameters())
    for a, b in zip(phase2.projector.parameters(), model.projector.parameters()):
        assert torch.equal(a, b)


def test_lmms_eval_resolves_unimm_by_name():
    from lmms_eval.models import get_model
    from unimm.evaluation.lmms_model import Unimm
    assert get_model('unimm') is Unimm


def test_lmms_eval_runs_the_shapes_tasks(trained, model, tmp_path):
    """lmms-eval's scores agree with the library's own generate / loglikelihood."""
    run_tool('test', CONFIG, trained, '--task', 'lmms', '--work-dir', tmp_path,
             '--cfg-options', 'test_cfg.lmms.limit=40')
    res = json.loads((tmp_path / 'test_lmms.json').read_text())
    gen, yes_no = res['shapes_vqa'], res['shapes_vqa_yesno']
    docs = json.load(open(os.path.join(TASKS, 'shapes_vqa_test.json')))
    world = ShapesWorld(0, 64)

    def inputs(rows):
        return ([model.single_turn(d['question']) for d in rows],
                torch.stack([pil_to_tensor(world.image(d['index'])) for d in rows]))
    convs, imgs = inputs(docs[:40])
    preds = model.generate(convs, imgs, max_new_tokens=4)
    assert gen['exact_match,none'] == pytest.approx(
        sum(p == d['answer'] for p, d in zip(preds, docs)) / 40)
    yn = [d for d in docs if d['answer'] in ('yes', 'no')][:40]
    convs, imgs = inputs(yn)
    ll_yes = model.loglikelihood(convs, ['yes'] * 40, imgs)
    ll_no = model.loglikelihood(convs, ['no'] * 40, imgs)
    picked = ['yes' if y[0] > n[0] else 'no' for y, n in zip(ll_yes, ll_no)]
    assert yes_no['acc,none'] == pytest.approx(
        sum(p == d['answer'] for p, d in zip(picked, yn)) / 40)


def test_loglikelihood_prefers_the_right_answer(model):
    """For held-out questions the true answer outscores the true answer of another
    question type about the same image (e.g. a colour vs 'yes'), and it is greedy
    exactly when generation gives it."""
    qa, images = held_out(6)
    by_scene = {}
    for i, q, a in qa:
        by_scene.setdefault(i, []).append((q, a))
    rows = [(i, q, a, next(b for q2, b in pairs if question_type(q2) != question_type(q)))
            for i, pairs in by_scene.items() for q, a in pairs
            if any(question_type(q2) != question_type(q) for q2, _ in pairs)][:60]
    convs = [model.single_turn(q) for _, q, _, _ in rows]
    imgs = torch.stack([images[i] for i, _, _, _ in rows])
    right = model.loglikelihood(convs, [a for _, _, a, _ in rows], imgs)
    other = model.loglikelihood(convs, [b for _, _, _, b in rows], imgs)
    # chance is 0.5; the tiny model trained by the fixture scores 0.85-0.95 depending on
    # the BLAS thread count (which changes its training numerics)
    assert sum(r[0] > o[0] for r, o in zip(right, other)) / len(rows) > 0.8
    generated = model.generate(convs, imgs, max_new_tokens=4)
    assert [r[1] for r in right] == [g == a for g, (_, _, a, _) in zip(generated, rows)]


def test_projector_position_code(demo_tokenizer, tiny_llama, tmp_path):
    """pos_dim: each image token's output depends on its features and its grid place
    (the sin-cos code), not on the other tokens; 0 is LLaVA's projector; the setting
    survives the export; a non-square grid is refused."""
    plain = MLPProjector(8, 16)
    assert plain[0].in_features == 8 and plain.pos_dim == 0
    proj = MLPProjector(8, 16, pos_dim=12)
    feats = torch.randn(2, 16, 8)
    out = proj(feats)
    expected = nn.Sequential(*proj)(torch.cat([feats, sincos_2d(12, (4, 4)).expand(2, -1, -1)], -1))
    assert torch.allclose(out, expected)
    same = feats[:1, :1].expand(1, 16, 8)  # one feature vector at every place
    assert len({tuple(v.round(decimals=5).tolist()) for v in proj(same)[0]}) == 16
    shuffled = feats.clone()
    shuffled[:, 1:] = feats[:, 1:].flip(1)
    assert torch.equal(proj(shuffled)[:, 0], out[:, 0])
    with pytest.raises(ValueError, match='square grid'):
        proj(torch.randn(1, 12, 8))
    for bad in (6, -4):
        with pytest.raises(ValueError, match='multiple of 4'):
            MLPProjector(8, 16, pos_dim=bad)

    model = MODELS.build(dict(type='UnderstandingMLLM', llm=tiny_llama,
                              vision=dict(type='TokenizerFeatures', tokenizer=demo_tokenizer),
                              projector=dict(type='MLPProjector', pos_dim=16))).eval()
    model.save_pretrained(tmp_path / 'export')
    again = UnderstandingMLLM.from_pretrained(str(tmp_path / 'export')).eval()
    assert again.projector.pos_dim == 16
    _, images = held_out(2)
    imgs = torch.stack(list(images.values()))
    with torch.no_grad():
        assert torch.equal(model.projector(model.vision(imgs)), again.projector(again.vision(imgs)))
