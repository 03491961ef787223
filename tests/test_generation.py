"""GenerationMLLM and its visual heads on a tiny Qwen2 without an image tokenizer (the
pre-tokenised / benchmark configuration): sequence layout, loss targets, caption drop,
packing, heads, save/load."""
import json

import pytest
import torch

from unimm.apis.tiny_lm import make_tiny_lm
from unimm.registry import MODELS

K, M, N = 8, 3, 16  # semantic codes, sub-codes, tokens per image


@pytest.fixture(scope='module')
def tiny_qwen2(tmp_path_factory):
    return make_tiny_lm(str(tmp_path_factory.mktemp('tiny_qwen2')), arch='qwen2', hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=2)


def build(llm, **kw):
    cfg = dict(type='GenerationMLLM', llm=llm, num_semantic=K, sub_codes=M, num_image_tokens=N)
    cfg.update(kw)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {'visual_ids': torch.randint(0, K * M, (n, N), generator=g),
            'text': ['a red circle', 'two blue squares and a green triangle', '',
                     'a photo of a diamond'][:n]}


def test_vocabulary_and_prompts(tiny_qwen2):
    model = build(tiny_qwen2)
    emb = model.llm.get_input_embeddings().num_embeddings
    assert emb == model.text_vocab + K * M + 2
    assert (model.boi_id, model.eoi_id) == (model.text_vocab + K * M, model.text_vocab + K * M + 1)
    assert model.llm.get_output_embeddings().weight.shape[0] == emb
    bos = model.tokenizer.bos_token_id
    cond, none, empty = model.prompt_ids(['a red circle', None, ''])
    assert cond[0] == bos and cond[-1] == model.boi_id and len(cond) > 3
    assert cond[1:-1] == model.tokenizer('a red circle', add_special_tokens=False)['input_ids']
    assert none == empty == [bos, model.boi_id]


def test_sequence_targets_are_the_visual_tokens_only(tiny_qwen2):
    model = build(tiny_qwen2)
    b = batch()
    prompts = model.prompt_ids(b['text'])
    ids, pos, target = model.build_inputs(prompts, b['visual_ids'])
    for r, (prompt, vis) in enumerate(zip(prompts, b['visual_ids'])):
        n = len(prompt) + N + 1
        assert ids[r, :len(prompt)].tolist() == prompt
        assert ids[r, len(prompt):n - 1].tolist() == (vis + model.text_vocab).tolist()
        assert ids[r, n - 1] == model.eoi_id  # <eoi> closes the image but is not a target
        assert target[r].nonzero().flatten().tolist() == list(range(len(prompt), n - 1))
        assert pos[r, :n].tolist() == list(range(n))


def test_packed_rows_give_the_padded_loss(tiny_qwen2):
    padded = build(tiny_qwen2, uncond_prob=0.0)
    packed = build(tiny_qwen2, uncond_prob=0.0, pack_length=10 ** 4)
    b = batch()
    ids, _, _ = packed.build_inputs(packed.prompt_ids(b['text']), b['visual_ids'])
    assert ids.shape[0] == 1  # all four samples share one row
    assert torch.allclose(padded(b)['loss'], packed(b)['loss'], atol=1e-5)


def test_caption_drop_rate_and_determinism(tiny_qwen2):
    model = build(tiny_qwen2)
    captions = ['a red circle'] * 20000
    torch.manual_seed(3)
    first = model.drop_captions(captions)
    torch.manual_seed(3)
    assert model.drop_captions(captions) == first
    rate = sum(c is None for c in first) / len(first)
    assert abs(rate - 0.1) < 0.01
    torch.manual_seed(3)
    assert model(batch())['uncond_fraction'] in (0.0, 0.25, 0.5, 0.75, 1.0)


def test_flat_head_is_the_visual_slice_of_the_lm_head(tiny_qwen2):
    model = build(tiny_qwen2)
    hidden = torch.randn(5, model.llm.config.hidden_size)
    full = model.llm.lm_head(hidden)
    head = model.visual_head
    assert torch.allclose(head.visual_logits(hidden),
                          full[:, model.text_vocab:model.text_vocab + K * M], atol=1e-6)
    targets = torch.randint(0, K * M, (5,))
    expected = torch.nn.functional.cross_entropy(full[:, model.text_vocab:model.boi_id], targets)
    assert torch.allclose(head.loss(hidden, targets), expected, atol=1e-5)
    argmax = lambda lc, lu: lc.argmax(-1)  # noqa: E731
    assert torch.equal(head.sample(hidden, None, argmax), full[:, model.text_vocab:
                                                                 model.boi_id].argmax(-1))


def test_factorized_head_is_a_normalised_distribution_over_k_times_m():
    head = MODELS.build(dict(type='FactorizedVisualHead', hidden_size=16, num_visual=K * M,
                             factorization=(K, M)))
    hidden = torch.randn(4, 16)
    every = torch.arange(K * M)
    logp = torch.stack([head.log_prob(h.expand(K * M, 16), every) for h in hidden])
    assert torch.allclose(logp.exp().sum(-1), torch.ones(4), atol=1e-5)
    targets = torch.tensor([0, 5, K * M - 1, 13])
    assert torch.allclose(head.loss(hidden, targets),
                          -logp.gather(1, targets[:, None]).mean(), atol=1e-6)
    # greedy draws pick the semantic argmax, then the sub-code argmax under it
    argmax = lambda lc, lu: lc.argmax(-1)  # noqa: E731
    g = head.sample(hidden, None, argmax)
    i = head.semantic_logits(hidden).argmax(-1)
    assert torch.equal(g // M, i)
    assert torch.equal(g % M, head.sub_logits(hidden, i).argmax(-1))


def test_factorized_head_guidance_reaches_both_levels():
    head = MODELS.build(dict(type='FactorizedVisualHead', hidden_size=16, num_visual=K * M,
                             factorization=(K, M)))
    seen = []

    def draw(lc, lu):
        seen.append((lc.shape[-1], lu is not None))
        return lc.argmax(-1)
    head.sample(torch.randn(2, 16), torch.randn(2, 16), draw)
    assert seen == [(K, True), (M, True)]


def test_random_architecture_for_benchmarks(tiny_qwen2):
    arch = dict(model_type='qwen2', hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, vocab_size=500)
    model = build(arch, tokenizer=tiny_qwen2)
    assert model.text_vocab == 500 and model.boi_id == 500 + K * M
    assert model.llm.get_input_embeddings().num_embeddings == 500 + K * M + 2


def test_bad_inputs_say_what_to_do(tiny_qwen2, tmp_path):
    with pytest.raises(FileNotFoundError, match='make_tiny_lm'):
        build(str(tmp_path / 'nowhere'))
    with pytest.raises(ValueError, match='num_semantic'):
        MODELS.build(dict(type='GenerationMLLM', llm=tiny_qwen2))
    with pytest.raises(FileNotFoundError, match='pretokenize'):
        build(tiny_qwen2, image_tokenizer=str(tmp_path))
    with pytest.raises(RuntimeError, match='pre-tokenised'):
        build(tiny_qwen2)({'image': torch.zeros(1, 3, 8, 8), 'text': ['x']})


@pytest.mark.parametrize('head', ['FlatVisualHead', 'FactorizedVisualHead'])
def test_save_load_round_trip(tiny_qwen2, tmp_path, head):
    model = build(tiny_qwen2, visual_head=dict(type=head), uncond_prob=0.0)
    with torch.no_grad():  # a trained-looking LLM: move the weights off their init
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path / 'export')
    loaded = type(model).from_pretrained(str(tmp_path / 'export'))
    assert loaded.text_vocab == model.text_vocab and loaded.boi_id == model.boi_id
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    b = batch()
    assert torch.equal(model(b)['loss'], loaded(b)['loss'])
    # an export written before num_visual existed names the vocabulary by K and m alone
    config = tmp_path / 'export' / 'config.json'
    old = json.loads(config.read_text())
    assert old.pop('num_visual') == K * M and (old['num_semantic'], old['sub_codes']) == (K, M)
    config.write_text(json.dumps(old))
    assert torch.equal(type(model).from_pretrained(str(tmp_path / 'export'))(b)['loss'],
                       loaded(b)['loss'])


def test_a_visual_head_must_define_log_prob_and_sample():
    from unimm.models.mllm.visual_head import VisualHead

    class Partial(VisualHead):
        def log_prob(self, hidden, targets):
            return hidden.sum(-1)
    with pytest.raises(TypeError, match='sample'):
        Partial(8, 4)
