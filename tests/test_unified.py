"""UnifiedMLLM on a tiny random SemHiTok and a tiny LLaMA: export round trip, the mixed
loader, per-task losses against the single-task models, an interleaved chat (a question,
then a drawing), the fast sampler against the reference loop, and the evaluators."""
import itertools
import os

import numpy as np
import pytest
import torch
from PIL import Image

from unimm.datasets.shapes import ShapesWorld
from unimm.datasets.transforms import pil_to_tensor
from unimm.inference.sampler import CFGSampler, reference_generate
from unimm.models.mllm.unified import UnifiedMLLM
from unimm.registry import DATASETS, MODELS

SIZE, K, M = 32, 16, 4  # conftest's tiny_unified_parts: 32 px, 4x4 tokens, K x M codes
TOKENS = (SIZE // 8) ** 2


@pytest.fixture(scope='module')
def parts(tiny_unified_parts):
    """(tiny LLaMA folder, random tiny SGHC SemHiTok export folder): SIZE px, K x M codes."""
    return tiny_unified_parts


def build(parts, **kw):
    llm, tokenizer = parts
    torch.manual_seed(0)
    model = MODELS.build(dict(dict(type='UnifiedMLLM', llm=llm, image_tokenizer=tokenizer,
                                   max_caption_tokens=16), **kw))
    with torch.no_grad():  # a trained-looking model: every weight off its init
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope='module')
def model(parts):
    return build(parts)


@pytest.fixture(scope='module')
def export(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp('export')
    model.save_pretrained(folder)
    return str(folder)


def mixed_dataset(parts, ratio=0.5, length=6):
    llm, _ = parts
    return DATASETS.build(dict(
        type='MixedTaskDataset', understanding_ratio=ratio, seed=0,
        understanding=dict(type='ShapesLLaVADataset', tokenizer=llm, resolution=SIZE,
                           length=length, num_image_tokens=TOKENS, turns=2),
        generation=dict(type='ShapesCaptionDataset', resolution=SIZE, length=length)))


def mixed_batch(parts, n=4):
    ds = mixed_dataset(parts)
    return ds.collate_fn(list(itertools.islice(ds, n)))


def images(n, start=100000):
    world = ShapesWorld(0, SIZE)
    return torch.stack([pil_to_tensor(world.image(start + i)) for i in range(n)])


# ------------------------------------------------------------------ model and export
@pytest.mark.parametrize('kw', [{}, dict(image_input='visual_tokens',
                                         visual_head=dict(type='FactorizedVisualHead')),
                                dict(vision='semantic features, loaded apart')])
def test_export_round_trip_gives_identical_logits(parts, model, export, kw, tmp_path):
    if 'vision' in kw:  # a projector on another adapter: saved in vision/
        kw = dict(vision=dict(type='TokenizerFeatures', tokenizer=parts[1],
                              llm_features='semantic'))
    if kw:
        model = build(parts, **kw)
        model.save_pretrained(tmp_path)
        export = str(tmp_path)
    assert model.llm.get_input_embeddings().num_embeddings == model.text_vocab + K * M + 2
    assert model.image_input_tokens == model.num_image_tokens == TOKENS
    loaded = UnifiedMLLM.from_pretrained(export).eval()
    assert loaded.text_vocab == model.text_vocab and loaded.image_input == model.image_input
    assert model.state_dict().keys() == loaded.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    conv = model.single_turn('how many shapes are there?')
    ids = torch.tensor([model.conversation_ids(conv)])
    gen_ids = torch.tensor(model.caption_prompt_ids(['a red circle']))
    with torch.no_grad():
        for m in (model, loaded):
            m.out = (m.llm(inputs_embeds=m.embed(ids, images(1))).logits,
                     m.llm(input_ids=gen_ids).logits)
    assert all(torch.equal(a, b) for a, b in zip(model.out, loaded.out))
    files = {'config.json', 'image_tokenizer', 'llm', 'model.safetensors'}
    assert set(os.listdir(export)) == files | ({'vision'} if 'vision' in kw else set())


def test_visual_token_input_embeds_the_images_own_ids(parts):
    model = build(parts, image_input='visual_tokens')
    assert model.projector is None and model.vision is None
    x = images(2)
    with torch.no_grad():
        expected = model.llm.get_input_embeddings()(model.encode_images(x) + model.text_vocab)
        assert torch.equal(model.image_embeddings(x), expected)
    with pytest.raises(ValueError, match='takes no vision adapter'):
        build(parts, image_input='visual_tokens', projector_from='x')


# ------------------------------------------------------------------ mixed data
def test_mixed_stream_ratio_order_and_determinism(parts):
    ds = DATASETS.build(dict(
        type='MixedTaskDataset', understanding_ratio=0.25, seed=3,
        understanding=dict(type='ShapesCaptionDataset', resolution=8, start=0, length=40),
        generation=dict(type='ShapesCaptionDataset', resolution=8, start=1000, length=1000)))
    stream = [(task, item['index']) for task, item in ds]
    tasks = [t for t, _ in stream]
    # it ends where the understanding source (40 items) runs out: 3 more images, then none
    assert len(stream) == 163
    assert all(sum(1 - t for t in tasks[k:k + 4]) == 1 for k in range(0, 160, 4))
    und = [i for t, i in stream if t == 0]
    assert sorted(und) == list(range(40)) and und != sorted(und)  # each once, shuffled
    assert all(1000 <= i < 2000 for t, i in stream if t == 1)
    assert [(t, item['index']) for t, item in ds] == stream  # deterministic
    ds.set_epoch(1)
    assert [(t, item['index']) for t, item in ds][:20] != stream[:20]
    ds.set_epoch(0)
    halves = []
    for rank in (0, 1):  # two ranks: disjoint halves of the understanding items
        ds.rank, ds.world_size = rank, 2
        halves.append({item['index'] for t, item in ds if t == 0})
    assert len(halves[0]) == len(halves[1]) == 20 and halves[0] | halves[1] == set(und)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=ds.collate_fn)
    batch = next(iter(loader))
    assert batch['task'].tolist() == [1, 1, 1, 0, 1, 1, 1, 0]
    assert len(batch['und']['index']) == 2 and len(batch['gen']['text']) == 6


def test_per_task_losses_equal_the_single_task_models(parts, model, export):
    batch = mixed_batch(parts)
    assert batch['task'].tolist() == [1, 0, 1, 0]
    assert batch['und']['images'].shape == (2, 3, SIZE, SIZE) and len(batch['gen']['text']) == 2
    torch.manual_seed(5)  # the caption drop draws from the global RNG
    out = model(batch)
    from unimm.engine.runner import scalars_of
    from unimm.utils.batch import sum_losses
    # the runner optimises the sum and logs each task's loss
    assert torch.equal(sum_losses(out, 'UnifiedMLLM'), out['loss_und'] + out['loss_gen'])
    assert {'loss_und', 'loss_gen', 'und_samples', 'gen_samples'} <= set(scalars_of(out))
    assert (out['und_samples'], out['gen_samples']) == (2, 2)
    folder = os.path.join(export, 'image_tokenizer')
    und = MODELS.build(dict(type='UnderstandingMLLM', llm=os.path.join(export, 'llm'),
                            vision=dict(type='TokenizerFeatures', tokenizer=folder),
                            template='vicuna_v1', train_llm=True)).eval()
    und.projector.load_state_dict(model.projector.state_dict())
    gen = MODELS.build(dict(type='GenerationMLLM', llm=os.path.join(export, 'llm'),
                            image_tokenizer=folder, text_vocab=model.text_vocab,
                            max_caption_tokens=16)).eval()
    with torch.no_grad():
        assert torch.equal(out['loss_und'], und(batch['und'])['loss'])
        torch.manual_seed(5)
        assert torch.equal(out['loss_gen'], gen(batch['gen'])['loss'])
    # a plain batch of one kind trains that task alone
    und_only = model(batch['und'])
    assert torch.equal(und_only['loss_und'], out['loss_und']) and und_only['loss_gen'] == 0


# ------------------------------------------------------------------ inference
def test_fast_sampler_emits_the_reference_loop_tokens(model):
    prompts = model.caption_prompt_ids(['a red circle', 'two blue squares and a green star'])
    uncond = model.caption_prompt_ids([None, None])
    sampler = CFGSampler(model, max_batch=2, max_prompt_len=32)
    for setting in (dict(cfg_scale=3.0, seed=1), dict(cfg_scale=2.0, top_k=8, top_p=0.9,
                                                      temperature=0.8, seed=2)):
        ref = reference_generate(model, prompts, uncond, **setting)
        assert ref.shape == (2, TOKENS) and int(ref.max()) < K * M
        assert torch.equal(sampler.generate(prompts, uncond, **setting), ref)


def test_text_answers_never_emit_image_tokens(parts):
    model = build(parts)
    conv = model.single_turn('how many shapes?')
    embeds = model.embed(torch.tensor([model.conversation_ids(conv)]), images(1))
    with torch.no_grad():  # make <boi> and a visual token the LM head's favourites
        model.llm.lm_head.weight[[model.boi_id, model.text_vocab + 5]] *= 1000
        free = model.llm.generate(inputs_embeds=embeds, max_new_tokens=3, do_sample=False)
        ids = model.llm.generate(inputs_embeds=embeds, max_new_tokens=3, do_sample=False,
                                 **model._text_generation_kwargs())
    assert int(free.min()) >= model.text_vocab  # unmasked, the LLM would emit image ids
    assert int(ids.max()) < model.text_vocab
    assert isinstance(model.generate([conv], images(1), max_new_tokens=3)[0], str)


def test_interleaved_chat_answers_then_draws(model, export, tmp_path):
    from unimm.apis.chat import Chat, load_image
    world = ShapesWorld(0, SIZE)
    world.image(100000).save(tmp_path / 'x.png')
    image = load_image(tmp_path / 'x.png', model.image_size)
    session = Chat(model, image, max_new_tokens=4, cfg_scale=3, out=str(tmp_path), seed=7)
    question = world.vqa(100000)[0][0]
    answer = session.send(question, stream=False)
    assert answer == model.generate([model.single_turn(question)], image[None],
                                    max_new_tokens=4)[0]
    assert session.draw_caption('drawing tips?') is None
    path = session.send('draw: a large red circle')
    reply = session.last_reply_ids
    # <boi>, exactly h*w visual tokens, <eoi>: the image ends the reply
    assert len(reply) == TOKENS + 2 and reply[0] == model.boi_id and reply[-1] == model.eoi_id
    visual = reply[1:-1] - model.text_vocab
    assert visual.min() >= 0 and visual.max() < K * M
    assert torch.equal(visual, model.generate_ids(['a large red circle'], cfg_scale=3,
                                                  seed=7)[0])
    with Image.open(path) as drawn:
        saved = np.asarray(drawn)
    assert saved.shape == (SIZE, SIZE, 3)
    decoded = model.decode_images(visual[None])[0]
    assert np.abs(saved.astype(float) / 127.5 - 1 - decoded.permute(1, 2, 0).numpy()).max() \
        < 1 / 127
    assert [t['from'] for t in session.turns] == ['human', 'gpt', 'human', 'gpt']
    assert len(session.images) == 2  # the user's image, then the drawn one
    follow_up = session.send('what color is the shape?', stream=False)  # about the drawing
    assert isinstance(follow_up, str) and len(session.turns) == 6


def test_one_export_serves_the_evaluators(parts, export, tmp_path):
    from unimm.models.mllm.llm import load_exported
    from unimm.registry import METRICS
    model = load_exported(None, export).eval()
    assert isinstance(model, UnifiedMLLM)
    vqa = METRICS.build(dict(type='ShapesVQAEvaluator', batch_size=4, max_questions=4,
                             dataset=dict(type='ShapesVQADataset', resolution=SIZE,
                                          start=100000, length=1)))(model)
    assert vqa['num_questions'] == 4 and 0 <= vqa['accuracy'] <= 1
    geneval = METRICS.build(dict(type='ShapesGenEvalEvaluator', n_per_tag=1, n_samples=1,
                                 batch_size=6, resolution=SIZE,
                                 sampling=dict(cfg_scale=2.0)))(model, work_dir=str(tmp_path))
    assert geneval['num_images'] == 6 and 0 <= geneval['overall'] <= 1
    # held-out loss: the forward's loss on held-out pairs, without the caption drop
    pairs = dict(type='ShapesCaptionDataset', resolution=SIZE, start=100000, length=6)
    held_out = METRICS.build(dict(type='HeldOutLossEvaluator', dataset=pairs,
                                  batch_size=3))(model)
    assert model.uncond_prob == 0.1 and held_out['num_batches'] == 2  # restored
    batches = [DATASETS.build(pairs)[i] for i in range(6)]
    model.uncond_prob = 0.0
    with torch.no_grad():
        expected = [float(model({'image': torch.stack([b['image'] for b in batches[k:k + 3]]),
                                 'text': [b['text'] for b in batches[k:k + 3]]})['loss_gen'])
                    for k in (0, 3)]
    assert held_out['loss'] == pytest.approx(sum(expected) / 2, rel=1e-6)


def test_chat_tool_answers_and_draws(model, export, tmp_path, capsys):
    from unimm.apis.chat import chat, load_image  # what tools/chat.py runs, streaming included
    world = ShapesWorld(0, SIZE)
    world.image(100001).save(tmp_path / 'x.png')
    question = world.vqa(100001)[0][0]
    chat('registry_configs/demo/unified_shapes.py', export, str(tmp_path / 'x.png'),
         [question, 'draw a small blue square'], max_new_tokens=4, out=str(tmp_path))
    answer, path = capsys.readouterr().out.strip().splitlines()[-2:]
    image = load_image(tmp_path / 'x.png', SIZE)[None]
    assert answer.strip() == model.generate([model.single_turn(question)], image,
                                            max_new_tokens=4)[0]
    with Image.open(path) as drawn:
        assert drawn.size == (SIZE, SIZE)
