"""A decode-friendly SDPA for grouped-query attention with a padding mask.

HF's SDPA path needs ``enable_gqa`` or key/value heads repeated to the query heads; with
an attention mask (which a static cache and left-padded CFG rows always need) and under
``torch.compile`` it materialises ``repeat_kv`` over the whole cache in every layer. For
one query token the query heads of a KV group can instead be laid out as that group's
query rows, so each cached key/value is read once. Longer queries (prefill, training)
go through HF's own SDPA unchanged.
"""
import contextlib

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = 'unimm_gqa_sdpa'


def gqa_decode_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """Attention of one query token per row with the ``n_rep`` query heads of each KV
    head as that head's query rows ([B, H, 1, D] -> [B, H_kv, n_rep, D]), written out
    (two small matmuls and a masked softmax, which the compiler fuses; an SDPA kernel
    launch costs more than the work at this size); HF's SDPA for longer queries."""
    n_rep = getattr(module, 'num_key_value_groups', 1)
    if query.shape[2] != 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      scaling=scaling, **kwargs)
    batch, heads, _, dim = query.shape
    if scaling is None:
        scaling = dim ** -0.5
    grouped = query.reshape(batch, heads // n_rep, n_rep, dim)
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float() * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float('-inf'))
        else:
            scores = scores + attention_mask
    out = torch.matmul(scores.softmax(-1).to(value.dtype), value)
    return out.reshape(batch, 1, heads, value.shape[-1]), None


AttentionInterface.register(NAME, gqa_decode_attention)
AttentionMaskInterface.register(NAME, sdpa_mask)


@contextlib.contextmanager
def gqa_decode_attention_for(llm, enabled=True):
    """Within the block an HF model on ``sdpa`` runs `gqa_decode_attention` (the same
    attention; other implementations, e.g. flash-attention, are left alone)."""
    before = llm.config._attn_implementation
    if before != 'sdpa' or not enabled:
        yield llm
        return
    llm.set_attn_implementation(NAME)
    try:
        yield llm
    finally:
        llm.set_attn_implementation(before)
