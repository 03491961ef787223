"""Speculative Jacobi decoding (SJD; Teng et al. 2024, arXiv 2410.01699) of image tokens.

Each forward pass after the prompt reads a window of ``window`` tokens: the last accepted
token and ``window - 1`` draft tokens for the positions after it. The pass gives the
sampler's exact next-token distribution p at the first draft position (its prefix is
accepted) and, at each later one, p under the drafts before it. Drafts are verified in
order with the speculative-sampling rule: draft x, drawn from a proposal q, is kept with
probability min(1, p(x) / q(x)); the first one rejected is replaced by a draw from the
residual norm(max(0, p - q)) and the pass stops there; if every draft is kept, one more
token is drawn from p at the window's last position. A pass thus yields 1 to ``window``
tokens, each distributed exactly as plain sampling would draw it. The rejected positions
are drafted again from the distributions this pass computed (the Jacobi iteration: the
proposal q of a draft is the distribution it was drawn from), the positions beyond the
window from its last one; their key/value entries in the static cache are rolled back
(the cache's write position moves back; the next pass overwrites them, and causal masking
hides them until then).

p is the distribution the plain sampler draws from: guided logits ``u + s (c - u)`` with
the scale of the position's step, temperature, top-k / top-p, softmax; greedy decoding
(temperature 0) is the one-hot distribution of the argmax, so a draft is kept exactly
when it is the argmax and the tokens are the plain loop's.

`FactorizedVisualHead` ids are pairs (semantic code s, sub-code j) with p(s, j) = p(s)
p(j | s): the rule is applied level by level. The draft's s is verified against p(s);
if it is kept, its j against p(j | s); a rejected s is replaced from the semantic
residual and its j drawn from p(j | s), a rejected j (under a kept s) from the residual
of p(j | s). Both levels are exact, so the pair is drawn from p(s) p(j | s). (A single
test on the pair, min(1, p(s, j) / q(s, j)), would keep a pair somewhat more often, but
its residual needs p(j | s) for every code s at the rejected position.)
"""
import torch

from unimm.inference.sampler import (GREEDY, GUIDED, SCALE, TEMPERATURE, TOP_K, TOP_P,
                                     _argmax, _filter_by_knobs)
from unimm.models.mllm.visual_head import FactorizedVisualHead, _both


def probs_from_knobs(logits_cond, logits_uncond, knobs, filtered=True):
    """The distribution [N, V] that `draw_tokens_knobs` draws from, row n with the
    settings ``knobs[n]`` ([N, 6]; the rows may differ in the guidance scale only):
    guided logits, temperature, top-k / top-p (``filtered``), softmax; one-hot of the
    guided argmax where greedy."""
    logits = logits_cond.float()
    if logits_uncond is not None:
        uncond = logits_uncond.float()
        logits = torch.where(knobs[:, GUIDED, None] > 0,
                             uncond + knobs[:, SCALE, None] * (logits - uncond), logits)
    greedy = torch.nn.functional.one_hot(_argmax(logits), logits.shape[-1]).float()
    logits = logits / knobs[:, TEMPERATURE, None]
    if filtered:
        logits = _filter_by_knobs(logits, knobs[0, TOP_K], knobs[0, TOP_P])
    return torch.where(knobs[:, GREEDY, None] > 0, greedy, logits.softmax(-1))


def sample_probs(probs):
    """One draw per row of ``probs`` [N, V] (an exponential race on log p; ids of
    probability 0 are never drawn)."""
    noise = torch.empty_like(probs).exponential_().log()
    return _argmax(torch.where(probs > 0, probs.log() - noise, float('-inf')))


def speculative_rule(target, proposal, drafts):
    """Speculative sampling at each row: whether draft ``drafts[n]`` (drawn from
    ``proposal[n]``) is kept under ``target[n]``, and the draw from the residual
    norm(max(0, target - proposal)) that replaces it if not (from ``target`` where the
    residual is empty, which only rounding can make happen)."""
    p = target.gather(-1, drafts[:, None]).squeeze(-1)
    q = proposal.gather(-1, drafts[:, None]).squeeze(-1)
    keep = torch.rand_like(q) * q < p
    residual = (target - proposal).clamp(min=0)
    residual = torch.where(residual.sum(-1, keepdim=True) > 0, residual, target)
    return keep, sample_probs(residual)


class FlatLevels:
    """SJD on `FlatVisualHead`: one distribution over the visual ids. A draft state is
    (ids [M], proposals [M, V])."""

    def __init__(self, head):
        self.head = head

    def target(self, hc, hu, knobs, filtered):
        return probs_from_knobs(*_both(self.head.visual_logits, hc, hu), knobs, filtered)

    def draw(self, hc, hu, knobs, target, rows, filtered):
        """Fresh ids drawn at ``rows`` of ``target`` and their draft state."""
        q = target[rows]
        ids = sample_probs(q)
        return ids, (ids, q)

    @staticmethod
    def ids(state):
        return state[0]

    def verify(self, hc, hu, knobs, target, state, filtered):
        """Kept flags and replacement ids for the drafts of ``state`` (one per row of
        ``target`` but its last)."""
        ids, q = state
        return speculative_rule(target[:-1], q, ids)


class FactorizedLevels:
    """SJD on `FactorizedVisualHead`, level by level (see the module docstring). A draft
    state is (codes [M], their proposals [M, K], sub-codes [M], their proposals [M, m])."""

    def __init__(self, head):
        self.head = head

    def target(self, hc, hu, knobs, filtered):
        return probs_from_knobs(*_both(self.head.semantic_logits, hc, hu), knobs, filtered)

    def sub_target(self, hc, hu, knobs, codes, filtered):
        return probs_from_knobs(*_both(self.head.sub_logits, hc, hu, codes), knobs, filtered)

    def draw(self, hc, hu, knobs, target, rows, filtered):
        q_code = target[rows]
        codes = sample_probs(q_code)
        q_sub = self.sub_target(hc[rows], None if hu is None else hu[rows], knobs[rows], codes,
                                filtered)
        subs = sample_probs(q_sub)
        return self.head.factorization.join(codes, subs), (codes, q_code, subs, q_sub)

    def ids(self, state):
        return self.head.factorization.join(state[0], state[2])

    def verify(self, hc, hu, knobs, target, state, filtered):
        codes, q_code, subs, q_sub = state
        hc, hu, knobs = hc[:-1], None if hu is None else hu[:-1], knobs[:-1]
        keep_code, new_code = speculative_rule(target[:-1], q_code, codes)
        keep_sub, new_sub = speculative_rule(self.sub_target(hc, hu, knobs, codes, filtered),
                                             q_sub, subs)
        # a replaced code takes a sub-code drawn from p(j | new code)
        fresh_sub = sample_probs(self.sub_target(hc, hu, knobs, new_code, filtered))
        code = torch.where(keep_code, codes, new_code)
        sub = torch.where(keep_code, new_sub, fresh_sub)
        return keep_code & keep_sub, self.head.factorization.join(code, sub)


def levels_for(head):
    """The SJD adapter of a visual head."""
    return FactorizedLevels(head) if isinstance(head, FactorizedVisualHead) else FlatLevels(head)


def jacobi_pass(levels, hc, hu, knobs, state, window, filtered):
    """The verification of one pass from its hidden states ``hc`` / ``hu`` [window, D]
    (cond / uncond; hu None unguided) and ``knobs`` [window, 6] (the settings of the
    positions they predict): the window's tokens (the kept drafts, then the replacement
    or the extra token; entries past ``count`` are meaningless), ``count`` (1 to
    ``window``, a 0-d tensor) and the next pass's draft state."""
    target = levels.target(hc, hu, knobs, filtered)
    last = torch.full((1,), window - 1, dtype=torch.long, device=hc.device)
    extra, _ = levels.draw(hc, hu, knobs, target, last, filtered)
    slots = torch.arange(window, device=hc.device)
    if window > 1:
        keep, replace = levels.verify(hc, hu, knobs, target, state, filtered)
        kept = keep.long().cumprod(0).sum()  # drafts kept before the first rejection
        drafted = torch.cat([levels.ids(state), extra])
        fix = torch.cat([replace, extra])
        tokens = torch.where(slots < kept, drafted, fix)
    else:
        kept, tokens = slots.sum(), extra
    # the next drafts: position a + count + i from the distribution at slot count + i, or
    # the window's last beyond it
    rows = (kept + 1 + slots[:-1]).clamp(max=window - 1)
    _, next_state = levels.draw(hc, hu, knobs, target, rows, filtered)
    return tokens, kept + 1, next_state
