"""UnderstandingMLLM end to end on the demo tokenizer: image features at the <image>
positions, a short demo train that answers held-out shapes VQA above the blind
baseline, export round-trip, batched == one-by-one generation, tools/chat.py, phase-1
freezing, and the lmms-eval model (registry, tasks, loglikelihood)."""
import json
import os

import pytest
import torch

from tests.conftest import run_tool
from unimm.datasets.conversation import IMAGE_TOKEN_INDEX, VICUNA_SYSTEM
from unimm.datasets.shapes import ShapesWorld
from unimm.datasets.transforms import pil_to_tensor
from unimm.models.mllm.tiny_lm import make_tiny_lm
from unimm.models.mllm.understanding import UnderstandingMLLM
from unimm.registry import MODELS

CONFIG = 'registry_configs/demo/llava_sghc_shapes.py'
HELD_OUT = 100000


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


def test_demo_answers_held_out_vqa_above_the_blind_baseline(trained, tmp_path):
    out = run_tool('test', CONFIG, trained, '--task', 'vqa', '--work-dir', tmp_path,
                   '--cfg-options', 'test_cfg.vqa.max_questions=300')
    res = json.loads((tmp_path / 'test_vqa.json').read_text())
    assert res['num_questions'] == 300 and '"accuracy"' in out
    # the blind baseline (best answer per question type, image ignored) is ~0.45 here
    assert res['accuracy'] > res['blind_baseline'] + 0.05, res


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
    picks = [qa[0], qa[3], qa[-1], qa[-5]]  # different prompt lengths, two scenes
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
    run_tool('test', CONFIG, trained, '--task', 'lmms', '--work-dir', tmp_path,
             '--cfg-options', 'test_cfg.lmms.limit=60')
    res = json.loads((tmp_path / 'test_lmms.json').read_text())
    gen, yes_no = res['shapes_vqa'], res['shapes_vqa_yesno']
    # lmms-eval's generate_until path scores what the library generates
    qa, images = held_out(5)
    qa = qa[:60]
    preds = model.generate([model.single_turn(q) for _, q, _ in qa],
                           torch.stack([images[i] for i, _, _ in qa]), max_new_tokens=4)
    assert gen['exact_match,none'] == pytest.approx(
        sum(p == a for p, (_, _, a) in zip(preds, qa)) / 60)
    assert yes_no['acc,none'] > 0.5  # loglikelihood picks the right one of yes / no


def test_loglikelihood_prefers_the_right_answer(model):
    """For held-out questions, the true answer outscores a wrong answer of the same kind."""
    qa, images = held_out(20)
    alternatives = {'yes': 'no', 'no': 'yes'}
    picks = [(i, q, a) for i, q, a in qa if a in alternatives][:60]
    convs = [model.single_turn(q) for _, q, _ in picks]
    imgs = torch.stack([images[i] for i, _, _ in picks])
    right = model.loglikelihood(convs, [a for _, _, a in picks], imgs)
    wrong = model.loglikelihood(convs, [alternatives[a] for _, _, a in picks], imgs)
    wins = sum(r[0] > w[0] for r, w in zip(right, wrong)) / len(picks)
    assert wins > 0.6, wins
    greedy = [r[1] for r in right] + [w[1] for w in wrong]
    assert sum(greedy) <= len(picks)  # at most one of the two is the greedy answer
