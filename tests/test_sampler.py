"""The CFG sampler: its filtering and draw against direct definitions, and the fast path
(static cache, cond + uncond rows in one batch) against the plain HF loop, token for token."""
import math

import pytest
import torch

from tests.sampling_stats import (ALPHA, CAPTIONS, chi_square_pvalues, exact_marginals,
                                  random_setting)
from unimm.apis.tiny_lm import make_tiny_lm
from unimm.inference.sampler import (CFGSampler, _argmax, _Sampling, cfg_scale_at,
                                     draw_tokens, draw_tokens_knobs, filter_logits,
                                     reference_generate)
from unimm.models.mllm.visual_head import FlatVisualHead
from unimm.registry import MODELS


def test_filter_logits_matches_definitions():
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    kept = filter_logits(logits, top_k=7).isfinite()
    assert kept.sum(-1).tolist() == [7] * 4
    assert torch.equal(kept, torch.zeros_like(kept).scatter(-1, logits.topk(7).indices, True))

    top_p = 0.6
    kept = filter_logits(logits, top_p=top_p).isfinite()
    for row, keep in zip(logits, kept):
        probs, order = row.softmax(-1).sort(descending=True)
        # the smallest prefix of the sorted distribution whose mass reaches top_p
        n = int((probs.cumsum(0) < top_p).sum()) + 1
        assert set(order[:n].tolist()) == set(keep.nonzero().flatten().tolist())
    assert torch.equal(filter_logits(logits), logits)


def test_draw_is_a_categorical_draw_of_the_guided_distribution():
    torch.manual_seed(0)
    cond, uncond = torch.randn(1, 6), torch.randn(1, 6)
    scale = 2.5
    guided = uncond + scale * (cond - uncond)
    assert draw_tokens(cond, uncond, scale, temperature=0).item() == guided.argmax().item()
    n = 40000
    ids = draw_tokens(cond.expand(n, 6), uncond.expand(n, 6), scale, temperature=0.7)
    freq = torch.bincount(ids, minlength=6).float() / n
    expected = (guided / 0.7).softmax(-1)[0]
    assert torch.allclose(freq, expected, atol=4 * math.sqrt(0.25 / n))
    top2 = draw_tokens(cond.expand(n, 6), None, 1.0, top_k=2)
    assert set(top2.unique().tolist()) == set(cond.topk(2).indices[0].tolist())


def test_cfg_schedules():
    assert cfg_scale_at(5, 10, 4.0) == 4.0
    for schedule in ('linear', 'cosine'):
        assert cfg_scale_at(0, 10, 4.0, schedule) == 1.0
        assert cfg_scale_at(9, 10, 4.0, schedule) == pytest.approx(4.0)
    assert cfg_scale_at(3, 7, 4.0, 'linear') == pytest.approx(2.5)
    with pytest.raises(ValueError, match='cfg_schedule'):
        cfg_scale_at(0, 10, 4.0, 'exp')


SETTINGS = [dict(cfg_scale=3.0, temperature=1.0, seed=1),
            dict(cfg_scale=5.0, cfg_schedule='linear', temperature=0.9, top_k=40, top_p=0.9,
                 seed=2),
            dict(cfg_scale=1.0, temperature=1.2, top_p=0.8, seed=3, guided=False)]


def test_two_level_argmax_equals_argmax():
    torch.manual_seed(0)
    x = torch.randn(5, 3 * 2048)
    x[1, :4096] = float('-inf')
    x[2, 7] = x[2, 5000] = 100.0  # ties: the first index, as torch.argmax
    assert torch.equal(_argmax(x), x.argmax(-1))
    assert _argmax(x)[2] == 7
    assert torch.equal(_argmax(x[:, :2050]), x[:, :2050].argmax(-1))  # no chunking


@pytest.mark.parametrize('head,fuse', [('FlatVisualHead', True), ('FactorizedVisualHead', True),
                                       ('FlatVisualHead', False)])
def test_fast_sampler_emits_the_reference_loop_tokens(tiny_generator, head, fuse):
    model = tiny_generator(head)
    captions = ['a red circle', 'two blue squares and a large green triangle', None]
    prompts = model.prompt_ids(captions)
    uncond = model.prompt_ids([None] * len(captions))
    assert len({len(p) for p in prompts}) == 3  # rows are left-padded differently
    sampler = CFGSampler(model, max_batch=3, max_prompt_len=32, fuse_projections=fuse)
    for setting in SETTINGS:
        setting = dict(setting)
        guide = uncond if setting.pop('guided', True) else None
        ref = reference_generate(model, prompts, guide, **setting)
        fast = sampler.generate(prompts, guide, **setting)
        assert ref.shape == (3, model.num_image_tokens)
        assert torch.equal(fast, ref), setting
        assert ref.min() >= 0 and ref.max() < model.num_visual
    # a different seed gives different tokens; the same seed the same ones again
    assert not torch.equal(sampler.generate(prompts, uncond, seed=9), ref)


@pytest.mark.parametrize('head', ['FlatVisualHead', 'FactorizedVisualHead'])
@pytest.mark.parametrize('rows', [1, 3])
def test_head_sample_gives_each_half_its_own_logits(tiny_generator, head, rows):
    """Cond and uncond logits computed together (one GEMM, or two row products for one
    row each) equal the logits of each half computed alone."""
    model = tiny_generator(head)
    head = model.visual_head
    torch.manual_seed(1)
    hc, hu = torch.randn(rows, 64), torch.randn(rows, 64)
    seen = []

    def draw(lc, lu):
        seen.append((lc, lu))
        return lc.argmax(-1)

    with torch.no_grad():
        ids = head.sample(hc, hu, draw)
        if isinstance(head, FlatVisualHead):
            expect = [(head.visual_logits(hc), head.visual_logits(hu))]
        else:
            i = expect_i = head.semantic_logits(hc).argmax(-1)
            expect = [(head.semantic_logits(hc), head.semantic_logits(hu)),
                      (head.sub_logits(hc, i), head.sub_logits(hu, i))]
            assert torch.equal(head.factorization.split(ids)[0], expect_i)
    assert len(seen) == len(expect)
    for (lc, lu), (ec, eu) in zip(seen, expect):
        torch.testing.assert_close(lc, ec)
        torch.testing.assert_close(lu, eu)
        assert not torch.allclose(lc, lu)


def test_cache_length_is_aligned_and_hides_its_spare_slots(tiny_generator):
    model = tiny_generator('FlatVisualHead')
    sampler = CFGSampler(model, max_batch=1, max_prompt_len=33)
    assert sampler.max_len == 64 and 33 + model.num_image_tokens < 64
    prompts, uncond = model.prompt_ids(['a red circle']), model.prompt_ids([None])
    assert torch.equal(sampler.generate(prompts, uncond, seed=3),
                       reference_generate(model, prompts, uncond, seed=3))


def test_reference_loop_reads_the_visual_slice_of_the_lm_head(tiny_generator):
    """Greedy decoding through the head equals greedy decoding of the full HF logits
    restricted to the visual vocabulary, fed back as LLM ids."""
    model = tiny_generator('FlatVisualHead')
    prompt = model.prompt_ids(['a small yellow star'])
    ids = torch.tensor(prompt)
    expected = []
    with torch.no_grad():
        for _ in range(model.num_image_tokens):
            logits = model.llm(input_ids=ids).logits[0, -1]
            g = logits[model.text_vocab:model.text_vocab + model.num_visual].argmax()
            expected.append(int(g))
            ids = torch.cat([ids, (model.text_vocab + g).view(1, 1)], dim=1)
    got = reference_generate(model, prompt, None, temperature=0)
    assert got[0].tolist() == expected


def test_sampler_rejects_bad_requests(tiny_generator):
    model = tiny_generator('FlatVisualHead')
    sampler = CFGSampler(model, max_batch=1, max_prompt_len=4)
    prompts = model.prompt_ids(['a red circle'])
    with pytest.raises(ValueError, match='max_prompt_len'):
        sampler.generate(prompts)
    with pytest.raises(ValueError, match='max_batch'):
        CFGSampler(model, max_batch=1).generate(prompts * 2)
    with pytest.raises(ValueError, match='unconditional'):
        sampler.generate(prompts, [])
    with pytest.raises(ValueError, match='top_p'):
        sampler.generate(prompts, top_p=0.0)


def test_gqa_decode_attention_equals_hf_sdpa(tiny_generator):
    """The grouped decode attention gives HF SDPA's hidden states (left padding, a
    static cache, 2 query heads per KV head), and the model is back on SDPA after."""
    from transformers import StaticCache

    from unimm.inference.attention import gqa_decode_attention_for
    model = tiny_generator('FlatVisualHead')
    llm = model.llm.model
    ids = torch.tensor([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1] * 5])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)

    def decode(grouped):
        cache = StaticCache(config=model.llm.config, max_cache_len=8)
        full = torch.zeros(2, 8, dtype=torch.long)
        full[:, :5] = mask
        full[:, 5] = 1
        with torch.no_grad(), gqa_decode_attention_for(model.llm, grouped):
            llm(input_ids=ids, attention_mask=full, position_ids=positions, cache=cache)
            return llm(input_ids=torch.tensor([[9], [10]]), attention_mask=full,
                       position_ids=positions[:, -1:] + 1, cache=cache).last_hidden_state
    grouped = decode(True)
    assert model.llm.config._attn_implementation == 'sdpa'
    torch.testing.assert_close(grouped, decode(False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('arch', ['qwen2', 'llama'])
def test_fused_projections_give_hf_hidden_states_and_leave_the_model_as_it_was(
        tmp_path, arch):
    """Decoder layers as four products on norm-scaled, concatenated weights: HF's hidden
    states at prefill and decode (static cache, left padding; Qwen2 with q/k/v biases,
    LLaMA without; RMSNorm scales not 1), weights and norm scales trained after the first
    use are picked up, and outside the block nothing has changed."""
    from transformers import AutoModelForCausalLM, StaticCache

    from unimm.inference.fused import FusedProjections, _fused_layer_forward
    folder = make_tiny_lm(tmp_path / arch, arch=arch, hidden_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, vocab_size=300)
    torch.manual_seed(0)
    llm = AutoModelForCausalLM.from_pretrained(folder).eval()
    for layer in llm.model.layers:  # non-trivial biases and scales, so a misplaced one shows
        torch.nn.init.normal_(layer.input_layernorm.weight)
        torch.nn.init.normal_(layer.post_attention_layernorm.weight)
        if arch == 'qwen2':
            torch.nn.init.normal_(layer.self_attn.k_proj.bias)
    ids = torch.tensor([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5]])
    mask = torch.zeros(2, 8, dtype=torch.long)
    mask[:, :6] = torch.tensor([[0, 0, 1, 1, 1, 1], [1] * 6])
    positions = (mask[:, :5].cumsum(-1) - 1).clamp(min=0)

    def run():
        cache = StaticCache(config=llm.config, max_cache_len=8)
        with torch.no_grad():
            first = llm.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                              cache=cache).last_hidden_state
            second = llm.model(input_ids=torch.tensor([[9], [10]]), attention_mask=mask,
                               position_ids=positions[:, -1:] + 1, cache=cache).last_hidden_state
        return first, second

    keys, classes = set(llm.state_dict()), {type(m): type(m).forward for m in llm.modules()}
    fused = FusedProjections(llm)
    assert len(fused.groups) == 4  # q/k/v and gate/up of 2 layers
    for _ in range(2):  # the second time after a weight update (fused tensors refreshed)
        with fused.active():
            layer = llm.model.layers[0]
            attn = layer.self_attn
            assert layer.forward.__func__ is _fused_layer_forward  # this instance's forward
            assert type(layer).forward is classes[type(layer)]  # its class is untouched
            qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
            torch.testing.assert_close(layer.unimm_qkv_weight,
                                       qkv * layer.input_layernorm.weight)
            assert layer.unimm_gate_up_weight.shape[0] == 2 * layer.mlp.up_proj.out_features
            got = run()
        for a, b in zip(got, run()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            llm.model.layers[0].mlp.up_proj.weight.mul_(2)
            llm.model.layers[1].self_attn.v_proj.weight.add_(0.1)
            llm.model.layers[1].post_attention_layernorm.weight.mul_(0.5)
    assert set(llm.state_dict()) == keys
    assert all(cls.forward is forward for cls, forward in classes.items())
    assert not any('forward' in vars(m) for m in llm.modules())
    assert not any(name.startswith('unimm') for name, _ in llm.named_buffers())


@pytest.mark.slow
@pytest.mark.parametrize('prompts', [1, 2])
def test_compiled_decode_step_decodes_greedily_like_the_reference_loop(tiny_generator, prompts):
    """The decode step through inductor with the default tuning (fused projections,
    grouped attention, combo kernels; on the CPU backend, without the GPU's CUDA graphs)
    decodes greedily exactly as the plain loop, for one prompt (2 rows) and two (4 rows);
    its sampled draws (inductor's own random stream) repeat for the same seed, and other
    temperatures, scales and schedules run the same graph (no recompile)."""
    model = tiny_generator('FlatVisualHead')
    ids = model.prompt_ids(['a red circle', 'two blue squares'][:prompts])
    uncond = model.prompt_ids([None] * prompts)
    sampler = CFGSampler(model, max_batch=prompts, max_prompt_len=16, compile=True)
    assert sampler._step_fn is not sampler._decode_step
    fast = sampler.generate(ids, uncond, cfg_scale=3.0, temperature=0)
    assert torch.equal(fast, reference_generate(model, ids, uncond, cfg_scale=3.0, temperature=0))
    graphs = torch._dynamo.utils.counters['stats']['unique_graphs']
    drawn = sampler.generate(ids, uncond, seed=1)
    assert torch.equal(sampler.generate(ids, uncond, seed=1), drawn)
    assert not torch.equal(sampler.generate(ids, uncond, seed=2), drawn)
    sampler.generate(ids, uncond, seed=1, temperature=0.7, cfg_scale=5.0, cfg_schedule='cosine')
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] == graphs


def test_draw_from_knobs_is_the_reference_draw():
    """`draw_tokens_knobs` (settings as one tensor, one sort for top-k and top-p) draws the
    same tokens as `draw_tokens` for the same seed, for every kind of setting; without
    top-k / top-p its unsorted variant does too."""
    import random
    rng = random.Random(0)
    for trial in range(60):
        vocab = rng.choice([5, 50, 3000])
        _, guided, setting = random_setting(rng, 1)
        opts = _Sampling(**setting)
        torch.manual_seed(trial)
        cond = torch.randn(3, vocab) * rng.choice([0.1, 1.0, 5.0])
        uncond = torch.randn(3, vocab) if guided else None
        knobs = opts.knobs(7, guided, 'cpu')
        step = rng.randrange(7)
        for filtered in {opts.filtered, True}:
            with torch.random.fork_rng():
                torch.manual_seed(setting['seed'])
                want = draw_tokens(cond, uncond, opts.scale(step, 7), opts.temperature,
                                   opts.top_k, opts.top_p)
            with torch.random.fork_rng():
                torch.manual_seed(setting['seed'])
                got = draw_tokens_knobs(cond, uncond, knobs[step], filtered)
            assert torch.equal(got, want), (setting, filtered)


@pytest.fixture(scope='module')
def one_layer_generator(tmp_path_factory):
    """A GenerationMLLM on a 1-layer Qwen2 (K = 8, m = 2, 4 image tokens): quick to trace."""
    folder = make_tiny_lm(tmp_path_factory.mktemp('qwen2_1'), arch='qwen2', hidden_size=32,
                          num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                          vocab_size=300)
    torch.manual_seed(0)
    return MODELS.build(dict(type='GenerationMLLM', llm=str(folder), num_semantic=8,
                             sub_codes=2, num_image_tokens=4)).eval()


@pytest.mark.slow
def test_compiled_sampler_builds_one_graph_per_bucket_for_any_settings(one_layer_generator):
    """50 random calls (batch 1-4, guided or not, every sampling option) on one compiled
    sampler: no error, one graph per batch bucket and draw kind (without / with top-k or
    top-p), however many settings; each call's images are the reference loop's on its
    bucket's rows (the batch padded with its last prompt), the padding dropped. (Dynamo's
    capture and guards are inductor's; the graphs run eagerly here, so draws are the
    eager RNG's.)"""
    import random
    model = one_layer_generator
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    sampler = CFGSampler(model, max_batch=4, max_prompt_len=48, compile=True,
                         backend=counting_backend)
    assert sampler.buckets == [1, 2, 4]
    rng, kinds = random.Random(0), set()
    for _ in range(50):
        batch, guided, setting = random_setting(rng, 4)
        prompts = model.prompt_ids([rng.choice(CAPTIONS) for _ in range(batch)])
        uncond = model.prompt_ids([None] * batch) if guided else None
        ids = sampler.generate(prompts, uncond, **setting)
        bucket = next(b for b in sampler.buckets if b >= batch)
        kinds.add((bucket, bool(setting['top_k']) or setting['top_p'] < 1))
        pad = bucket - batch
        ref = reference_generate(model, prompts + prompts[-1:] * pad,
                                 uncond and uncond + uncond[-1:] * pad, **setting)
        assert torch.equal(ids, ref[:batch]), (batch, guided, setting)
        assert len(graphs) == len(kinds)
    assert len(kinds) == 2 * len(sampler.buckets)  # the sweep reached every graph


def test_samplers_nest_and_alternate_and_leave_other_models_alone(tiny_generator):
    """Sampler A draws its image while, half-way through (its progress callback), sampler
    B draws one on another model and a second sampler draws one on A's own model; then
    they alternate. Every image is its model's reference-loop image, and a third Qwen2
    model under no sampler keeps its class's layers and its outputs throughout."""
    first, second, other = (tiny_generator(head) for head in
                            ('FlatVisualHead', 'FactorizedVisualHead', 'FlatVisualHead'))
    prompts = first.prompt_ids(['a red circle', 'two blue squares'])
    uncond = first.prompt_ids([None, None])
    ref_a = reference_generate(first, prompts, uncond, seed=1)
    ref_b = reference_generate(second, prompts, uncond, seed=2, top_k=7)
    a, b = CFGSampler(first, max_batch=2, max_prompt_len=32), \
        CFGSampler(second, max_batch=2, max_prompt_len=32)
    a_again = CFGSampler(first, max_batch=2, max_prompt_len=32)
    layers = list(other.llm.model.layers)
    own_forward = type(layers[0]).forward
    probe = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = other.llm(probe).logits

    def untouched():
        with torch.no_grad():
            same = torch.equal(other.llm(probe).logits, before)
        return same and type(layers[0]).forward is own_forward and \
            not any('forward' in vars(layer) for layer in layers)

    nested = []

    def halfway(step, total):
        if step == total // 2:
            nested.append(b.generate(prompts, uncond, seed=2, top_k=7))
            assert untouched()
            nested.append(a_again.generate(prompts, uncond, seed=1))

    assert torch.equal(a.generate(prompts, uncond, seed=1, progress=halfway), ref_a)
    assert torch.equal(nested[0], ref_b) and torch.equal(nested[1], ref_a)
    for sampler, setting, ref in [(b, dict(seed=2, top_k=7), ref_b), (a, dict(seed=1), ref_a),
                                  (b, dict(seed=2, top_k=7), ref_b)]:
        assert torch.equal(sampler.generate(prompts, uncond, **setting), ref)
    assert untouched()
    for model in (first, second):
        assert not any('forward' in vars(m) or any(n.startswith('unimm') for n in m._buffers)
                       for m in model.modules())


@pytest.mark.parametrize('head, setting', [
    ('FlatVisualHead', dict(cfg_scale=3.0, temperature=0.8, top_k=6, top_p=0.9)),
    ('FactorizedVisualHead', dict(cfg_scale=2.0, temperature=1.0, top_k=3, top_p=0.8))])
def test_sampled_tokens_follow_the_exact_distribution(tiny_generator, head, setting):
    """The eager sampler's tokens at each of 3 positions (600 images: 3 seeds x 200
    prompts) pass a chi-square test at level 1e-3 against the exact marginals (every prefix
    enumerated over 8 visual ids), and the same counts fail it against the unguided
    distribution (the test has the power to see a wrong one)."""
    model = tiny_generator(head, num_semantic=4, sub_codes=2, num_image_tokens=3)
    with torch.no_grad():  # the flat head's logits x3: guidance and filtering then matter
        model.llm.lm_head.weight.mul_(3)
    prompt, uncond = model.prompt_ids(['a red circle', None])
    sampler = CFGSampler(model, max_batch=200, max_prompt_len=32)
    tokens = torch.cat([sampler.generate([prompt] * 200, [uncond] * 200, seed=seed, **setting)
                        for seed in range(3)])
    exact = exact_marginals(model, prompt, uncond, 3, **setting)
    assert min(chi_square_pvalues(tokens, exact)) > ALPHA
    unguided = exact_marginals(model, prompt, uncond, 3, **dict(setting, cfg_scale=1.0))
    assert max(chi_square_pvalues(tokens, unguided)) < ALPHA
