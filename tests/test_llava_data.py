"""LLaVA data: templates and answer-only labels, image placeholders, truncation, the
length-grouped order, the on-disk LLaVA format, and clear errors on bad input."""
import json
import logging

import pytest
import torch

from tests.conftest import run_tool
from unimm.apis.tiny_lm import make_tiny_lm
from unimm.datasets.llava import LLaVADataset, ShapesLLaVADataset
from unimm.datasets.samplers import length_grouped_indices
from unimm.models.mllm.conversation import (IGNORE_INDEX, IMAGE_TOKEN_INDEX, VICUNA_SYSTEM,
                                            get_template, tokenize_conversation)

CONV = [{'from': 'human', 'value': '<image>\nhow many circles are there?'},
        {'from': 'gpt', 'value': '2'},
        {'from': 'human', 'value': 'what color is the square?'},
        {'from': 'gpt', 'value': 'red'}]


@pytest.fixture(scope='module')
def tiny_lm(tmp_path_factory):
    return make_tiny_lm(str(tmp_path_factory.mktemp('lm')), hidden_size=32,
                        num_hidden_layers=1, num_attention_heads=2, extra_texts=[VICUNA_SYSTEM])


@pytest.fixture(scope='module')
def tokenizer(tiny_lm):
    from unimm.models.mllm.llm import load_text_tokenizer
    return load_text_tokenizer(tiny_lm, 'test')


def target_runs(labels):
    """The contiguous runs of unmasked labels, as lists of ids."""
    runs, cur = [], []
    for lab in labels:
        if lab == IGNORE_INDEX:
            if cur:
                runs.append(cur)
            cur = []
        else:
            cur.append(lab)
    return runs + ([cur] if cur else [])


@pytest.mark.parametrize('template', ['vicuna_v1', 'chatml'])
def test_labels_are_the_answers_and_their_end_only(tokenizer, template):
    ids, labels = tokenize_conversation(tokenizer, get_template(template), CONV, 5)
    assert len(ids) == len(labels)
    runs = target_runs(labels)
    stop = get_template(template).stop_text(tokenizer.eos_token)
    assert [tokenizer.decode(r).strip() for r in runs] == [f'2{stop}', f'red{stop}']
    # unmasked labels equal their input ids; the image is 5 placeholders, all masked
    assert all(lab in (IGNORE_INDEX, i) for i, lab in zip(ids, labels))
    where = [k for k, i in enumerate(ids) if i == IMAGE_TOKEN_INDEX]
    assert len(where) == 5 and where == list(range(where[0], where[0] + 5))
    assert all(labels[k] == IGNORE_INDEX for k in where)
    # the whole text round-trips, so training and inference tokenise alike
    text, _ = get_template(template).render(CONV, tokenizer.eos_token)
    assert tokenizer.decode([i for i in ids if i >= 0], skip_special_tokens=False) \
        .replace(tokenizer.bos_token, '') == text.replace('<image>', '')
    if template == 'vicuna_v1':
        assert text.startswith('A chat between') and 'USER: ' in text and ' ASSISTANT: 2' in text


def test_plain_template_keeps_only_image_and_caption(tokenizer):
    conv = [{'from': 'human', 'value': 'Describe it.\n<image>'}, {'from': 'gpt', 'value': 'a cat'}]
    ids, labels = tokenize_conversation(tokenizer, get_template('plain'), conv, 3)
    assert ids[1:4] == [IMAGE_TOKEN_INDEX] * 3
    assert tokenizer.decode([i for i in ids if i >= 0][1:]) == 'a cat\n'
    assert tokenizer.decode(target_runs(labels)[0]) == 'a cat\n'


def test_truncation_is_counted_and_never_crashes(tiny_lm, caplog):
    ds = ShapesLLaVADataset(tiny_lm, length=20, max_length=150, turns=8)
    with caplog.at_level(logging.WARNING):
        items = [ds[i] for i in range(len(ds))]
    assert ds.num_truncated > 0 and 'truncated' in caplog.text
    kept = [it for it in items if it is not None]
    assert len(kept) > 8 and all(len(it['input_ids']) <= 150 for it in kept)
    batch = ds.collate_fn(items[:8])
    assert int(batch['num_truncated']) == sum(it['truncated'] for it in items[:8] if it)
    # a cut through the image drops the item (counted as skipped by the runner)
    short = ShapesLLaVADataset(tiny_lm, length=2, max_length=40)
    assert short[0] is None and short.collate_fn([short[0], short[1]]) == {'num_skipped': 2}


def test_collate_pads_and_orders_images(tiny_lm):
    ds = ShapesLLaVADataset(tiny_lm, length=4, num_image_tokens=64)
    items = [ds[i] for i in range(3)]
    batch = ds.collate_fn(items)
    for row, it in enumerate(items):
        n = len(it['input_ids'])
        assert torch.equal(batch['input_ids'][row, :n], it['input_ids'])
        assert batch['attention_mask'][row].sum() == n
        assert (batch['labels'][row, n:] == IGNORE_INDEX).all()
        assert torch.equal(batch['images'][row], it['image'])


def test_length_grouped_order_is_a_grouped_permutation():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(10, 1000, (4000,), generator=gen).tolist()
    per_rank = [length_grouped_indices(lengths, 8, 2, r, seed=3, epoch=1) for r in range(2)]
    union = per_rank[0] + per_rank[1]
    assert sorted(union) == list(range(4000))  # 4000 = 250 global batches: nothing dropped
    assert per_rank[0] == length_grouped_indices(lengths, 8, 2, 0, seed=3, epoch=1)
    assert per_rank[0] != length_grouped_indices(lengths, 8, 2, 0, seed=3, epoch=2)

    def spread(order):  # mean max/min length ratio within batches of 8
        batches = [[lengths[i] for i in order[k:k + 8]] for k in range(0, len(order), 8)]
        return sum(max(b) / min(b) for b in batches) / len(batches)
    random_order = torch.randperm(4000, generator=gen).tolist()[:2000]
    assert spread(per_rank[0]) < 1.2 < 3 < spread(random_order)
    # the two ranks step on batches of similar lengths
    lens = [[lengths[i] for i in per_rank[r][k:k + 8]] for r in range(2) for k in (0,)]
    assert max(lens[0] + lens[1]) / min(lens[0] + lens[1]) < 1.5


def test_llava_json_on_disk_matches_the_in_memory_shapes_data(tiny_lm, tmp_path):
    run_tool('shapes_to_llava', '--out', tmp_path, '--kind', 'vqa', '--start', '7',
             '--scenes', '3')
    disk = LLaVADataset(str(tmp_path / 'shapes_vqa.json'), str(tmp_path), tiny_lm,
                        num_image_tokens=64, image_size=64, max_length=512)
    memory = ShapesLLaVADataset(tiny_lm, start=7, length=3)
    assert len(disk) == len(memory) > 3
    for i in range(len(disk)):
        a, b = disk[i], memory[i]
        assert torch.equal(a['input_ids'], b['input_ids'])
        assert torch.equal(a['labels'], b['labels'])
        assert torch.allclose(a['image'], b['image'])


def test_bad_input_gives_clear_errors(tiny_lm, tmp_path):
    with pytest.raises(FileNotFoundError, match='make_tiny_lm'):
        ShapesLLaVADataset(str(tmp_path / 'nope'), length=1)
    with pytest.raises(ValueError, match="unknown conversation template 'vicuna_v9'.*vicuna_v1"):
        ShapesLLaVADataset(tiny_lm, length=1, template='vicuna_v9')
    data = tmp_path / 'bad.json'
    data.write_text(json.dumps([{'id': 'x1', 'image': 'a.png', 'conversations': [
        {'from': 'human', 'value': 'no tag here'}, {'from': 'gpt', 'value': 'hi'}]}]))
    with pytest.raises(ValueError, match="record 0 \\(id 'x1'\\) has 0 <image> tags"):
        LLaVADataset(str(data), str(tmp_path), tiny_lm)
    from unimm.models.mllm.understanding import LLM_HINT, load_llm
    with pytest.raises(FileNotFoundError, match='huggingface-cli download'):
        load_llm(str(tmp_path / 'vicuna'), 'sdpa', 'UnderstandingMLLM.llm', LLM_HINT)
