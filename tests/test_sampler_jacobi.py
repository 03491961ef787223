"""Speculative Jacobi decoding (CFGSampler.generate(..., jacobi_window=W)): greedy tokens
equal the plain loop's, sampled tokens follow the exact distribution, the static cache
after a rejection is the cache of the accepted prefix, and the pass count."""
import pytest
import torch

from tests.sampling_stats import ALPHA, chi_square_pvalues, exact_marginals
from unimm.inference.sampler import CFGSampler, _left_pad, _Sampling, reference_generate
from unimm.inference.speculative import (levels_for, probs_from_knobs, sample_probs,
                                         speculative_rule)
from unimm.registry import MODELS


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


@pytest.mark.slow  # 600 calls at batch 1: minutes on a loaded CPU
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


def test_generate_ids_with_a_jacobi_window(tiny_generator):
    """Through the model: SJD draws each caption alone with seed ``seed + k`` (greedy: the
    plain sampler's tokens), counts its forward passes, and records the window."""
    from unimm.inference.generate import sample_records
    model = tiny_generator('FlatVisualHead')
    with torch.no_grad():
        model.llm.lm_head.weight.mul_(4)
    captions = ['a red circle', None, 'a star']
    plain = model.generate_ids(captions, temperature=0, cfg_scale=3.0, batch_size=1)
    assert model.generation_passes == 3 * model.num_image_tokens
    sjd = model.generate_ids(captions, temperature=0, cfg_scale=3.0, batch_size=8,
                             jacobi_window=6)
    assert torch.equal(sjd, plain)
    assert model.generation_passes < 3 * model.num_image_tokens
    sampled = model.generate_ids(captions, seed=5, jacobi_window=6)
    assert torch.equal(sampled[1:2], model.generate_ids(captions[1:2], seed=6, jacobi_window=6))
    records = sample_records(captions, batch_size=8, seed=5, jacobi_window=6)
    assert [r['seed'] for r in records] == [5, 6, 7]
    assert all(r['batch_size'] == 1 and r['jacobi_window'] == 6 for r in records)


@pytest.mark.slow
def test_sjd_table_measures_plain_and_jacobi_runs_and_writes_the_docs_section(
        tiny_unified_parts, tmp_path):
    """unimm.apis.sjd_table (tools/sjd_table.py) end to end on a tiny exported generator
    (random 32 px SGHC tokenizer, 16 tokens): per run passes, times, shapes-GenEval (and
    FID where the local Inception weights exist); the plain sampler's passes are the
    tokens, SJD's no more; the docs section between the markers is replaced, the rest of
    the file kept, with the benchmark's rows added; FID added later from the kept ids
    equals the FID measured with the run."""
    import json
    import os
    from unimm.apis import sjd_table
    from unimm.evaluation.recon_metrics import default_fid_weights
    llm, tokenizer = tiny_unified_parts
    torch.manual_seed(0)
    model = MODELS.build(dict(type='GenerationMLLM', llm=llm, image_tokenizer=tokenizer))
    with torch.no_grad():
        model.llm.lm_head.weight.mul_(4)
    model.save_pretrained(tmp_path / 'export')
    docs = tmp_path / 'generation.md'
    docs.write_text(f'# Title\n\nbefore\n\n{sjd_table.START}\nold table\n{sjd_table.END}\n\n'
                    'after\n')
    bench = tmp_path / 'bench.json'
    bench.write_text(json.dumps({'device': 'NVIDIA H100', 'date': '2026-12-07', 'jacobi': [
        dict(sampler='plain', passes_per_image=256, seconds_per_pass=0.004,
             seconds_per_image=1.024),
        dict(sampler='SJD W=16', passes_per_image=250.0, seconds_per_pass=0.0045,
             seconds_per_image=1.125)]}))
    fid = os.path.isfile(default_fid_weights())
    results = sjd_table.sjd_table(str(tmp_path / 'export'), windows=[4], seeds=2, n_per_tag=1,
                                  n_samples=2, fid=fid, benchmark=str(bench),
                                  json_path=str(tmp_path / 'r.json'), docs=str(docs))
    assert json.load(open(tmp_path / 'r.json'))['runs'] == results['runs']
    runs = results['runs']
    assert [(r['sampler'], r['seed']) for r in runs] == [
        ('plain', 0), ('plain', 1), ('SJD W=4', 0), ('SJD W=4', 1)]
    tokens = model.num_image_tokens
    for r in runs:
        assert r['images'] == 12 and 0 <= r['geneval_overall'] <= 1
        assert r['seconds_per_pass'] * r['passes_per_image'] == \
            pytest.approx(r['seconds_per_image'])
        assert (r['fid'] > 0) if fid else 'fid' not in r
    assert all(r['passes_per_image'] == tokens for r in runs[:2])
    assert all(tokens / 4 <= r['passes_per_image'] <= tokens for r in runs[2:])
    plain, sjd = results['summary']
    assert sjd['fewer_passes'] == pytest.approx(tokens / sjd['passes_per_image'])
    assert plain['fewer_passes'] == 1
    text = docs.read_text()
    assert text.startswith('# Title\n\nbefore\n\n') and text.endswith('\n\nafter\n')
    assert 'old table' not in text and text.count(sjd_table.START) == 1
    assert '| plain | 16.0 | 1.00× |' in text and '| SJD W=4 |' in text
    assert '| SJD W=16 | 250.0 | 4.50 | 1.125 |' in text
    # the section again from the saved results (no measuring), without the benchmark
    sjd_table.sjd_table(from_json=str(tmp_path / 'r.json'), docs=str(docs))
    again = docs.read_text()
    assert again.startswith('# Title\n\nbefore\n\n') and again.endswith('\n\nafter\n')
    assert again.replace('\n', '').count('| SJD W=4 |') == 1 and 'SJD W=16' not in again
    # FID added afterwards from the kept ids (sampled on one machine, scored on another)
    assert all(len(r['ids']) == 12 and len(r['ids'][0]) == tokens for r in runs)
    if fid:  # the first seed's runs lose their FID; only those are scored again
        later = json.load(open(tmp_path / 'r.json'))
        for r in later['runs'][::2]:
            del r['fid']
        json.dump(dict(later, fid=False), open(tmp_path / 'later.json', 'w'))
        sjd_table.sjd_table(from_json=str(tmp_path / 'later.json'), docs='',
                            fid_tokenizer=str(tmp_path / 'export' / 'image_tokenizer'))
        rescored = json.load(open(tmp_path / 'later.json'))
        assert rescored['fid'] is True
        assert [r['fid'] for r in rescored['runs']] == pytest.approx(
            [r['fid'] for r in runs], rel=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize('head', ['FlatVisualHead', 'FactorizedVisualHead'])
def test_compiled_jacobi_decoding_on_a_gpu(tiny_generator, head):
    """The CUDA path (inductor, CUDA graphs, fused layers; fp32): greedy SJD equals the
    plain loop for windows 1, 4 and 16, guided and unguided, with passes <= tokens; the
    same seed repeats; sampled SJD (inductor's random stream, 600 images at batch 1)
    passes the chi-square test against the exact marginals."""
    model = tiny_generator(head).cuda()
    with torch.no_grad():
        model.llm.lm_head.weight.mul_(4)
    sampler = CFGSampler(model, max_batch=1, max_prompt_len=32)
    assert sampler.compile
    prompt, uncond = model.prompt_ids(['a red circle']), model.prompt_ids([None])
    for guide, scale in [(uncond, 3.0), (None, 1.0)]:
        ref = reference_generate(model, prompt, guide, temperature=0, cfg_scale=scale)
        for window in (1, 4, 16):
            got = sampler.generate(prompt, guide, jacobi_window=window, temperature=0,
                                   cfg_scale=scale)
            assert torch.equal(got, ref), (scale, window)
            assert sampler.last_passes <= model.num_image_tokens
    drawn = sampler.generate(prompt, uncond, jacobi_window=4, seed=1)
    assert torch.equal(sampler.generate(prompt, uncond, jacobi_window=4, seed=1), drawn)

    small = tiny_generator(head, num_semantic=4, sub_codes=2, num_image_tokens=3).cuda()
    with torch.no_grad():
        small.llm.lm_head.weight.mul_(3)
    setting = dict(cfg_scale=3.0, temperature=0.8, top_k=6, top_p=0.9)
    prompt, uncond = small.prompt_ids(['a red circle', None])
    sampler = CFGSampler(small, max_batch=1, max_prompt_len=32)
    tokens = torch.cat([sampler.generate([prompt], [uncond], jacobi_window=3, seed=seed,
                                         **setting) for seed in range(600)])
    exact = exact_marginals(small, prompt, uncond, 3, **setting)
    assert min(chi_square_pvalues(tokens.cpu(), exact.cpu())) > ALPHA
