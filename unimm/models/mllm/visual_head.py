"""Output heads over the visual vocabulary of a generation MLLM (the image tokenizer's
``vocab_size`` ids).

A head maps LLM hidden states [N, D] to a distribution over the visual ids; the factorized
head reads them as g = i * m + j (i semantic code, j sub-code: the tokenizer's
``factorization``). ``loss`` (training) and ``sample`` (inference, with a ``draw``
callback that applies CFG and filtering) share the same logit methods, so what is trained
is exactly what is sampled.
"""
import abc

import torch
import torch.nn.functional as F
from torch import nn

from unimm.models.tokenizers.base import IdFactorization
from unimm.registry import MODELS


class VisualHead(nn.Module, abc.ABC):
    """Shared interface; ``attach`` is called once by the owning model with its HF LLM.
    ``num_visual``: the number of visual ids; ``factorization``: the tokenizer's
    `IdFactorization` (or a (K, m) pair), None when its ids do not factorise."""

    def __init__(self, hidden_size, num_visual, factorization=None):
        super().__init__()
        self.hidden_size, self.num_visual = hidden_size, num_visual
        self.factorization = IdFactorization(*factorization) if factorization else None

    def attach(self, llm, text_vocab):
        """Bind to the LLM whose hidden states this head reads (no-op by default)."""

    @abc.abstractmethod
    def log_prob(self, hidden, targets):
        """log p(targets | hidden) [N] for global ids ``targets`` [N]."""

    def loss(self, hidden, targets):
        """Mean negative log-likelihood of the global ids ``targets`` [N]."""
        return -self.log_prob(hidden, targets).mean()

    @abc.abstractmethod
    def sample(self, hidden_cond, hidden_uncond, draw):
        """Global ids [B]; ``draw(logits_cond, logits_uncond_or_None) -> indices [B]``."""


def _both(logits, hidden_cond, hidden_uncond, *args):
    """``logits`` of the cond rows and of the uncond rows (None without guidance), with
    one weight read: one GEMM over both halves, or, for one row each, two row products
    (which a compiled decode step fuses into one reduction kernel)."""
    if hidden_uncond is None:
        return logits(hidden_cond, *args), None
    if len(hidden_cond) == 1:
        return logits(hidden_cond, *args), logits(hidden_uncond, *args)
    both = logits(torch.cat([hidden_cond, hidden_uncond]), *(torch.cat([a, a]) for a in args))
    return both.chunk(2)


@MODELS.register_module()
class FlatVisualHead(VisualHead):
    """One softmax over the visual ids whose weights are the visual rows of the LLM's own
    output head (``lm_head.weight[text_vocab : text_vocab + num_visual]``): no parameters
    of its own, and the text logits are never computed at visual positions."""

    def attach(self, llm, text_vocab):
        # a plain attribute, not a submodule: the weights stay owned (and saved) by the LLM
        object.__setattr__(self, '_output', llm.get_output_embeddings())
        self.text_vocab = text_vocab

    def visual_weight(self):
        return self._output.weight[self.text_vocab:self.text_vocab + self.num_visual]

    def visual_logits(self, hidden):
        """Logits over the visual ids [..., num_visual]."""
        return F.linear(hidden, self.visual_weight())

    def log_prob(self, hidden, targets):
        logp = self.visual_logits(hidden).float().log_softmax(-1)
        return logp.gather(-1, targets[:, None]).squeeze(-1)

    def sample(self, hidden_cond, hidden_uncond, draw):
        return draw(*_both(self.visual_logits, hidden_cond, hidden_uncond))


@MODELS.register_module()
class FactorizedVisualHead(VisualHead):
    """p(g) = p(i | h) p(j | h, i): a K-way semantic head, then an m-way sub-code head fed
    h plus an embedding of the chosen semantic code (an MLP of width ``sub_hidden``).
    A step costs K + m logits instead of K*m; the distribution over K*m stays normalised.
    Needs a tokenizer whose ids factorise (SemHiTok with its SGHC branch)."""

    def __init__(self, hidden_size, num_visual, factorization=None, sub_hidden=None):
        super().__init__(hidden_size, num_visual, factorization)
        if self.factorization is None:
            raise ValueError('FactorizedVisualHead needs an image tokenizer whose ids factorise '
                             'as (semantic code, sub-code), e.g. SemHiTok with its SGHC '
                             'branch; use FlatVisualHead for this one')
        num_semantic, sub_codes = self.factorization
        if num_semantic * sub_codes != num_visual:
            raise ValueError(f'FactorizedVisualHead: {num_semantic} x {sub_codes} ids do not make '
                             f'the {num_visual} visual ids')
        sub_hidden = sub_hidden or hidden_size
        self.semantic = nn.Linear(hidden_size, num_semantic, bias=False)
        self.code_embed = nn.Embedding(num_semantic, hidden_size)
        self.sub = nn.Sequential(nn.LayerNorm(hidden_size), nn.Linear(hidden_size, sub_hidden),
                                 nn.GELU(), nn.Linear(sub_hidden, sub_codes))
        nn.init.normal_(self.semantic.weight, std=hidden_size ** -0.5)
        nn.init.normal_(self.code_embed.weight, std=0.02)

    def semantic_logits(self, hidden):
        """Logits over the K semantic codes [..., K]."""
        return self.semantic(hidden)

    def sub_logits(self, hidden, semantic_ids):
        """Logits over the m sub-codes of semantic code ``semantic_ids`` [...] -> [..., m]."""
        return self.sub(hidden + self.code_embed(semantic_ids).to(hidden.dtype))

    def log_prob(self, hidden, targets):
        i, j = self.factorization.split(targets)
        logp_i = self.semantic_logits(hidden).float().log_softmax(-1)
        logp_j = self.sub_logits(hidden, i).float().log_softmax(-1)
        return logp_i.gather(-1, i[:, None]).squeeze(-1) + logp_j.gather(-1, j[:, None]).squeeze(-1)

    def sample(self, hidden_cond, hidden_uncond, draw):
        i = draw(*_both(self.semantic_logits, hidden_cond, hidden_uncond))
        j = draw(*_both(self.sub_logits, hidden_cond, hidden_uncond, i))
        return self.factorization.join(i, j)

