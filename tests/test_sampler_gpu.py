"""The CFG sampler's compiled GPU path (CUDA graphs, the Triton matrix-vector kernel at <= 2
rows, fused decoder layers, inductor's random stream) held to the reference loop: 50
random settings in one process with one graph per batch bucket and draw kind, greedy
tokens equal to the loop's for both visual heads, and sampled tokens that pass a
chi-square test against the exact distribution. Needs a CUDA GPU (skipped without one);
docs/generation.md says how to run it."""
import random

import pytest
import torch

from tests.sampling_stats import (ALPHA, CAPTIONS, chi_square_pvalues, exact_marginals,
                                  random_setting)
from unimm.inference.sampler import CFGSampler, reference_generate

pytestmark = pytest.mark.gpu  # skipped without CUDA (conftest)


def padded(prompts, uncond, bucket):
    """The rows a compiled sampler runs for ``prompts``: padded to ``bucket`` with the last."""
    pad = bucket - len(prompts)
    return prompts + prompts[-1:] * pad, uncond and uncond + uncond[-1:] * pad


def check_fifty_settings(model, calls=50, **sampler_options):
    """``calls`` random calls on one compiled sampler: at most one graph per batch bucket
    and draw kind; greedy calls give the reference loop's tokens on the bucket's rows;
    sampled calls repeat for the same seed. (``sampler_options``: e.g. ``compile=True``
    to exercise the checks on the CPU.)"""
    sampler = CFGSampler(model, max_batch=4, max_prompt_len=48, **sampler_options)
    assert sampler.compile
    rng, kinds = random.Random(0), set()
    start = torch._dynamo.utils.counters['stats']['unique_graphs']
    for call in range(calls):
        batch, guided, setting = random_setting(rng, 4)
        prompts = model.prompt_ids([rng.choice(CAPTIONS) for _ in range(batch)])
        uncond = model.prompt_ids([None] * batch) if guided else None
        ids = sampler.generate(prompts, uncond, **setting)
        assert ids.shape == (batch, model.num_image_tokens)
        assert 0 <= ids.min() and ids.max() < model.num_visual
        bucket = next(b for b in sampler.buckets if b >= batch)
        kinds.add((bucket, bool(setting['top_k']) or setting['top_p'] < 1))
        if setting['temperature'] == 0:
            ref = reference_generate(model, *padded(prompts, uncond, bucket), **setting)
            assert torch.equal(ids, ref[:batch]), (batch, guided, setting)
        elif call % 5 == 0:
            assert torch.equal(sampler.generate(prompts, uncond, **setting), ids), setting
        graphs = torch._dynamo.utils.counters['stats']['unique_graphs'] - start
        assert graphs == len(kinds) <= 2 * len(sampler.buckets), (call, kinds)


def test_fifty_settings_build_one_graph_per_bucket_on_the_gpu(tiny_generator):
    check_fifty_settings(tiny_generator('FlatVisualHead').cuda())


def check_greedy_parity(model, **sampler_options):
    """Compiled greedy tokens equal the reference loop's: batch 1 (2 rows: the Triton
    kernel) and 3 prompts (bucket 4: cuBLAS), guided and unguided, two scales."""
    sampler = CFGSampler(model, max_batch=4, max_prompt_len=48, **sampler_options)
    assert sampler.compile and sampler.fused is not None
    for captions in (CAPTIONS[:1], CAPTIONS[:3]):
        prompts = model.prompt_ids(captions)
        for uncond in (model.prompt_ids([None] * len(captions)), None):
            for setting in (dict(cfg_scale=3.0), dict(cfg_scale=7.5, cfg_schedule='linear')):
                got = sampler.generate(prompts, uncond, temperature=0, **setting)
                bucket = next(b for b in sampler.buckets if b >= len(prompts))
                want = reference_generate(model, *padded(prompts, uncond, bucket),
                                          temperature=0, **setting)[:len(prompts)]
                assert torch.equal(got, want), (captions, uncond is None, setting)


@pytest.mark.parametrize('head', ['FlatVisualHead', 'FactorizedVisualHead'])
def test_compiled_greedy_tokens_are_the_reference_loops(tiny_generator, head):
    check_greedy_parity(tiny_generator(head).cuda())


DISTRIBUTION_SETTINGS = {
    'FlatVisualHead': dict(cfg_scale=3.0, temperature=0.8, top_k=6, top_p=0.9),
    'FactorizedVisualHead': dict(cfg_scale=2.0, temperature=1.0, top_k=3, top_p=0.8)}


def check_distribution(model, setting, rows=256, seeds=3, **sampler_options):
    """The compiled sampler's tokens at 3 positions (``rows`` x ``seeds`` images of one
    prompt) pass a chi-square test at level `ALPHA` against the exact marginals, and the
    same counts fail it against the unguided distribution."""
    with torch.no_grad():
        model.llm.lm_head.weight.mul_(3)  # as the CPU test: peaked enough for guidance to show
    prompt, uncond = model.prompt_ids(['a red circle', None])
    sampler = CFGSampler(model, max_batch=rows, max_prompt_len=32, **sampler_options)
    assert sampler.compile
    tokens = torch.cat([sampler.generate([prompt] * rows, [uncond] * rows, seed=seed,
                                         **setting) for seed in range(seeds)]).cpu()
    exact = exact_marginals(model, prompt, uncond, 3, **setting).cpu()
    assert min(chi_square_pvalues(tokens, exact)) > ALPHA
    unguided = exact_marginals(model, prompt, uncond, 3, **dict(setting, cfg_scale=1.0)).cpu()
    assert max(chi_square_pvalues(tokens, unguided)) < ALPHA


@pytest.mark.parametrize('head', ['FlatVisualHead', 'FactorizedVisualHead'])
def test_compiled_sampled_tokens_follow_the_exact_distribution(tiny_generator, head):
    model = tiny_generator(head, num_semantic=4, sub_codes=2, num_image_tokens=3).cuda()
    check_distribution(model, DISTRIBUTION_SETTINGS[head])
