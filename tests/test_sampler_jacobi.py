"""Speculative Jacobi decoding (CFGSampler.generate(..., jacobi_window=W)): greedy tokens
equal the plain loop's, sampled tokens follow the exact distribution, the static cache
after a rejection is the cache of the accepted prefix, and the pass count."""
import pytest
import torch

from tests.sampling_stats import ALPHA, chi_square_pvalues, exact_marginals
from unimm.apis.tiny_lm import make_tiny_lm
from unimm.inference.sampler import CFGSampler, _left_pad, _Sampling, reference_generate
from unimm.inference.speculative import (levels_for, probs_from_knobs, sample_probs,
                                         speculative_rule)
from unimm.registry import MODELS


@pytest.fixture(scope='module')
def tiny_generator(tmp_path_factory):
    """A GenerationMLLM on a saved tiny Qwen2 (K = 20, m = 4, 10 image tokens), random
    weights: ``tiny_generator(head_type, **vocabulary)``."""
    folder = make_tiny_lm(tmp_path_factory.mktemp('qwen2'), arch='qwen2', hidden_size=64,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          vocab_size=300)

    def build(head, num_semantic=20, sub_codes=4, num_image_tokens=10):
        torch.manual_seed(0)
        return MODELS.build(dict(type='GenerationMLLM', llm=str(folder),
                                 num_semantic=num_semantic, sub_codes=sub_codes,
                                 num_image_tokens=num_image_tokens,
                                 visual_head=dict(type=head))).eval()
    return build


@pytest.mark.parametrize('head', ['FlatVisualHead', 'FactorizedVisualHead'])
def test_greedy_jacobi_decoding_gives_the_reference_tokens(tiny_generator, head):
    """Greedy SJD equals the plain loop token for token, guided (two scales, a schedule)
    and unguided, for windows 1 to beyond the image; a pass yields at least one token, so
    passes <= tokens, and window 1 is the plain loop (one token per pass)."""
    model = tiny_generator(head)
    n = model.num_image_tokens
    with torch.no_grad():  # sharper logits: drafts then often match the argmax
        model.llm.lm_head.weight.mul_(4)
    sampler = CFGSampler(model, max_batch=1, max_prompt_len=32)
    passes = {}
    for caption in ['a red circle', 'two blue squares and a large green triangle']:
        prompt, uncond = model.prompt_ids([caption]), model.prompt_ids([None])
        for guide, setting in [(uncond, dict(cfg_scale=3.0)),
                               (uncond, dict(cfg_scale=5.0, cfg_schedule='cosine')),
                               (None, dict(cfg_scale=1.0))]:
            ref = reference_generate(model, prompt, guide, temperature=0, **setting)
            for window in (1, 2, 4, 16):
                got = sampler.generate(prompt, guide, jacobi_window=window, temperature=0,
                                       **setting)
                assert torch.equal(got, ref), (caption, setting, window)
                assert 1 <= sampler.last_passes <= n
                passes.setdefault(window, []).append(sampler.last_passes)
    assert set(passes[1]) == {n}
    assert min(passes[4]) < n and min(passes[16]) < n  # some drafts were kept


@pytest.mark.parametrize('head', ['FlatVisualHead', 'FactorizedVisualHead'])
def test_rollback_leaves_the_cache_of_the_accepted_prefix(tiny_generator, head):
    """One pass with greedy drafts (right, right, wrong, right) after the first token keeps
    two drafts and replaces the third by the argmax; the cache then holds exactly the
    keys / values of the prompt and the accepted tokens (its write position moved back),
    equal to a cache prefilled with them; the next pass continues the reference tokens."""
    from transformers import StaticCache
    model = tiny_generator(head)
    prompt, uncond = model.prompt_ids(['a small yellow star']), model.prompt_ids([None])
    ref = reference_generate(model, prompt, uncond, temperature=0, cfg_scale=3.0)[0]
    sampler = CFGSampler(model, max_batch=1, max_prompt_len=32, fuse_projections=False)
    ids, mask, positions = _left_pad(prompt + uncond, 0, 'cpu')
    length, window, max_len = ids.shape[1], 5, 64

    def prefilled(extra):
        cache = StaticCache(config=model.llm.config, max_cache_len=max_len)
        full = mask.new_ones(2, max_len)
        full[:, :length] = mask
        rows = torch.cat([ids, (model.text_vocab + extra).expand(2, -1)], 1)
        pos = torch.cat([positions, positions[:, -1:] + 1 + torch.arange(len(extra))], 1)
        with torch.no_grad():
            model.llm.model(input_ids=rows, attention_mask=full, position_ids=pos, cache=cache)
        return cache, full

    cache, full = prefilled(ref[:0])
    wrong = (ref[3] + 1) % model.num_visual
    drafts = torch.stack([ref[1], ref[2], wrong, ref[4]])
    levels = levels_for(model.visual_head)
    if head == 'FlatVisualHead':
        state = (drafts, torch.nn.functional.one_hot(drafts, model.num_visual).float())
    else:
        codes, subs = model.visual_head.factorization.split(drafts)
        num_semantic, sub_codes = model.visual_head.factorization
        state = (codes, torch.nn.functional.one_hot(codes, num_semantic).float(),
                 subs, torch.nn.functional.one_hot(subs, sub_codes).float())
    assert torch.equal(levels.ids(state), drafts)
    knobs = _Sampling(temperature=0, cfg_scale=3.0).knobs(model.num_image_tokens, True, 'cpu')
    base = positions[:, -1:] + torch.arange(window)
    with torch.no_grad():  # the cache holds the prompt; the pass starts from ref[0]
        tokens, count, state, done = sampler._jacobi_step(
            ref[:1], state, torch.tensor(1), base, full, knobs, cache, True, False, window)
    assert int(count) == 3 and int(done) == 4
    assert torch.equal(tokens[:3], ref[1:4])
    want, _ = prefilled(ref[:3])
    kept = length + 3  # prompt, ref[0], ref[1], ref[2]; ref[3] enters with the next pass
    for got_layer, want_layer in zip(cache.layers, want.layers):
        assert int(got_layer.cumulative_length) == kept
        torch.testing.assert_close(got_layer.keys[:, :, :kept], want_layer.keys[:, :, :kept])
        torch.testing.assert_close(got_layer.values[:, :, :kept],
                                   want_layer.values[:, :, :kept])
    with torch.no_grad():
        tokens, count, _, _ = sampler._jacobi_step(
            tokens[2:3], state, done, base, full, knobs, cache, True, False, window)
    assert torch.equal(tokens[:int(count)], ref[4:4 + int(count)])


@pytest.mark.parametrize('head, window, setting', [
    ('FlatVisualHead', 3, dict(cfg_scale=3.0, temperature=0.8, top_k=6, top_p=0.9)),
    ('FactorizedVisualHead', 2, dict(cfg_scale=2.0, temperature=1.0, top_k=3, top_p=0.8))])
def test_jacobi_tokens_follow_the_exact_distribution(tiny_generator, head, window, setting):
    """600 images of one guided prompt by sampled SJD (seeds 0-599, batch 1) pass a
    chi-square test at level 1e-3 at each of 3 positions against the exact marginals of
    the plain sampler (every prefix enumerated over 8 visual ids), and fail it against
    the unguided ones; both kept and rejected drafts occurred."""
    model = tiny_generator(head, num_semantic=4, sub_codes=2, num_image_tokens=3)
    with torch.no_grad():  # the flat head's logits x3: guidance and filtering then matter
        model.llm.lm_head.weight.mul_(3)
    prompt, uncond = model.prompt_ids(['a red circle', None])
    sampler = CFGSampler(model, max_batch=1, max_prompt_len=32)
    tokens, passes = [], []
    for seed in range(600):
        tokens.append(sampler.generate([prompt], [uncond], jacobi_window=window, seed=seed,
                                       **setting))
        passes.append(sampler.last_passes)
    tokens = torch.cat(tokens)
    exact = exact_marginals(model, prompt, uncond, 3, **setting)
    assert min(chi_square_pvalues(tokens, exact)) > ALPHA
    unguided = exact_marginals(model, prompt, uncond, 3, **dict(setting, cfg_scale=1.0))
    assert max(chi_square_pvalues(tokens, unguided)) < ALPHA
    assert min(passes) < 3 and max(passes) == 3  # drafts kept, and drafts rejected


def test_speculative_rule_gives_the_target_distribution():
    """The rule on its own: drafts from q, kept or replaced, are distributed as p (a
    sparse p and q included: q covering ids p has not, and the reverse)."""
    torch.manual_seed(0)
    n = 200000
    p = torch.tensor([0.5, 0.3, 0.2, 0.0, 0.0])
    q = torch.tensor([0.1, 0.1, 0.1, 0.3, 0.4])
    drafts = sample_probs(q.expand(n, 5))
    keep, replace = speculative_rule(p.expand(n, 5), q.expand(n, 5), drafts)
    out = torch.where(keep, drafts, replace)
    freq = torch.bincount(out, minlength=5).float() / n
    torch.testing.assert_close(freq, p, atol=0.005, rtol=0)
    # kept with probability sum min(p, q)
    assert abs(keep.float().mean().item() - torch.minimum(p, q).sum().item()) < 0.005


def test_probs_from_knobs_is_the_draw_distribution():
    """The distribution SJD verifies against is the one `draw_tokens_knobs` draws from:
    guided, tempered, top-k / top-p filtered; one-hot of the argmax when greedy."""
    from unimm.inference.sampler import draw_tokens_knobs
    torch.manual_seed(0)
    cond, uncond = torch.randn(1, 12), torch.randn(1, 12)
    opts = _Sampling(cfg_scale=2.5, temperature=0.7, top_k=5, top_p=0.9)
    knobs = opts.knobs(3, True, 'cpu')
    probs = probs_from_knobs(cond, uncond, knobs[1:2])[0]
    assert (probs > 0).sum() <= 5 and abs(probs.sum().item() - 1) < 1e-6
    n = 40000
    draws = draw_tokens_knobs(cond.expand(n, 12), uncond.expand(n, 12), knobs[1])
    freq = torch.bincount(draws, minlength=12).float() / n
    torch.testing.assert_close(freq, probs, atol=0.01, rtol=0)
    greedy = _Sampling(cfg_scale=2.5, temperature=0).knobs(1, True, 'cpu')
    onehot = probs_from_knobs(cond, uncond, greedy)[0]
    assert onehot.argmax() == (uncond + 2.5 * (cond - uncond)).argmax() and onehot.sum() == 1


def test_jacobi_decoding_rejects_bad_requests(tiny_generator):
    model = tiny_generator('FlatVisualHead')
    sampler = CFGSampler(model, max_batch=2, max_prompt_len=32)
    prompts = model.prompt_ids(['a red circle', 'a star'])
    with pytest.raises(ValueError, match='one prompt at a time'):
        sampler.generate(prompts, jacobi_window=4)
    with pytest.raises(ValueError, match='jacobi_window'):
        sampler.generate(prompts[:1], jacobi_window=0)


@pytest.mark.slow
@pytest.mark.parametrize('head', ['FlatVisualHead', 'FactorizedVisualHead'])
def test_compiled_jacobi_pass_is_one_graph_and_decodes_greedily_like_the_loop(
        tiny_generator, head):
    """The SJD pass under dynamo (fullgraph, the graphs run eagerly): greedy tokens equal
    the plain loop's, guided and unguided; one graph per window and draw kind whatever the
    settings (no recompile between passes or calls)."""
    model = tiny_generator(head)
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    sampler = CFGSampler(model, max_batch=1, max_prompt_len=32, compile=True,
                         backend=counting_backend)
    prompt, uncond = model.prompt_ids(['a red circle']), model.prompt_ids([None])
    for guide, scale in [(uncond, 3.0), (None, 1.0)]:
        ref = reference_generate(model, prompt, guide, temperature=0, cfg_scale=scale)
        assert torch.equal(sampler.generate(prompt, guide, jacobi_window=4, temperature=0,
                                            cfg_scale=scale), ref)
    sampler.generate(prompt, uncond, jacobi_window=4, seed=3, temperature=0.7)
    assert len(graphs) == 1
    sampler.generate(prompt, uncond, jacobi_window=4, seed=3, top_k=5)
    sampler.generate(prompt, uncond, jacobi_window=4, seed=4, top_p=0.5, cfg_scale=7.0)
    assert len(graphs) == 2
