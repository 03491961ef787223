"""Sampling statistics shared by the CPU and GPU sampler tests: random sampler settings, the
exact per-position token marginals of a tiny generator and a chi-square test against them."""
import torch

from unimm.inference.sampler import SCHEDULES, filter_logits
from unimm.models.mllm.visual_head import FlatVisualHead


def random_setting(rng, max_batch):
    """A random call: batch size, guided or not, and every sampling option (top-k / top-p
    off about half the time, greedy a sixth of it)."""
    return rng.randint(1, max_batch), rng.random() < 0.8, dict(
        cfg_scale=rng.choice([1.0, 1.5, 3.0, 7.5]), cfg_schedule=rng.choice(SCHEDULES),
        temperature=rng.choice([0, 0.5, 0.9, 1.0, 1.3, 2.0]),
        top_k=rng.choice([0, 0, 1, 3, 17, 1000]), top_p=rng.choice([1.0, 1.0, 0.5, 0.95]),
        seed=rng.randrange(1000))


CAPTIONS = ['a red circle', 'two blue squares and a large green triangle', None, 'a star']


def visual_heads_probs(model, hidden_cond, hidden_uncond, scale, temperature, top_k, top_p):
    """The sampler's next-token distribution [N, num_visual] (float64) from direct
    definitions: guided logits, temperature, `filter_logits`, softmax; the factorized head's
    as p(i) p(j | i) with both levels guided and filtered."""
    head = model.visual_head

    def dist(lc, lu):
        guided = lu.float() + scale * (lc.float() - lu.float())
        return filter_logits(guided / temperature, top_k, top_p).double().softmax(-1)
    if isinstance(head, FlatVisualHead):
        return dist(head.visual_logits(hidden_cond), head.visual_logits(hidden_uncond))
    semantic = dist(head.semantic_logits(hidden_cond), head.semantic_logits(hidden_uncond))
    num_semantic = semantic.shape[1]
    joint = []
    for i in range(num_semantic):
        code = torch.full((len(hidden_cond),), i, dtype=torch.long, device=hidden_cond.device)
        sub = dist(head.sub_logits(hidden_cond, code), head.sub_logits(hidden_uncond, code))
        joint.append(semantic[:, i:i + 1] * sub)
    return torch.cat(joint, 1)  # id i * m + j


@torch.no_grad()
def exact_marginals(model, prompt, uncond, positions, cfg_scale=4.0, temperature=1.0,
                    top_k=0, top_p=1.0):
    """P(token at position t) [positions, num_visual] of one guided prompt, summed over
    every prefix of visual tokens (num_visual ** t of them at position t)."""
    vocab, device = model.num_visual, model.llm.device
    prefixes, marginals = [[]], []
    weights = torch.ones(1, dtype=torch.float64, device=device)
    for t in range(positions):
        hidden_cond, hidden_uncond = (model.llm.model(input_ids=torch.tensor(
            [p + [model.text_vocab + v for v in pre] for pre in prefixes], device=device)
        ).last_hidden_state[:, -1] for p in (prompt, uncond))
        probs = visual_heads_probs(model, hidden_cond, hidden_uncond, cfg_scale, temperature,
                                   top_k, top_p)
        marginals.append(weights @ probs)
        weights = (weights[:, None] * probs).flatten()
        prefixes = [pre + [v] for pre in prefixes for v in range(vocab)]
    return torch.stack(marginals)


def chi_square_pvalues(tokens, marginals, min_expected=5.0):
    """Per position, the p-value of a chi-square goodness-of-fit test of the token counts
    against ``marginals`` (rare tokens pooled into one bin of expected count >= 5)."""
    from scipy.stats import chisquare
    pvalues = []
    for t, probs in enumerate(marginals):
        observed = torch.bincount(tokens[:, t], minlength=len(probs)).double()
        expected = probs * len(tokens)
        order = expected.argsort(descending=True)
        keep = order[expected[order] >= min_expected]
        rest = order[expected[order] < min_expected]
        obs = torch.cat([observed[keep], observed[rest].sum().view(1)])
        exp = torch.cat([expected[keep], expected[rest].sum().view(1)])
        if exp[-1] < min_expected:  # too little in the pool: fold it into the last bin
            obs, exp = torch.cat([obs[:-2], obs[-2:].sum().view(1)]), \
                torch.cat([exp[:-2], exp[-2:].sum().view(1)])
        assert observed.sum() == len(tokens) and observed[probs == 0].sum() == 0
        pvalues.append(float(chisquare(obs.numpy(), exp.numpy()).pvalue))
    return pvalues


ALPHA = 1e-3  # per position: a correct sampler fails one of the 3 x 2 tests with p < 0.6 %
