"""An HF Qwen2 / LLaMA decoder layer as four weight products for the decode step.

At decode the rows are few (2 per prompt with guidance): every projection is a weight
read, and the norms, adds and small projections around them are launch-bound.
`FusedProjections` keeps each layer's q/k/v and gate/up weights concatenated, with the
scale of the RMSNorm before them folded in (refreshed in place from the model on every
use: the same tensors each time, so compiled graphs and CUDA graphs keep their addresses,
and weights trained since are picked up). Within `active` the decoder layers run as
q/k/v (normalising x itself), attention, o (+ residual), gate/up (normalising, SiLU * up)
and down (+ residual), each through `gemv_rows`: a Triton matrix-vector kernel at a few
rows on a GPU, torch otherwise. Only this model's layer instances change (their own
``forward`` attribute and buffers, restored on exit, so uses nest); the decoder layer
classes, and so every other model in the process, are untouched.
"""
import contextlib
import sys
import types

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from unimm.inference.gemv import gemv_rows

LAYERS = ('Qwen2DecoderLayer', 'LlamaDecoderLayer')
QKV, QKV_BIAS, GATE_UP, GATE_UP_BIAS = ('unimm_qkv_weight', 'unimm_qkv_bias',
                                        'unimm_gate_up_weight', 'unimm_gate_up_bias')


def _attention(attn, qkv, position_embeddings, attention_mask, cache, **kwargs):
    """HF's Qwen2 / LLaMA attention from its q/k/v projections to the input of o_proj."""
    shape = (*qkv.shape[:-1], -1, attn.head_dim)
    sizes = (attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features)
    q, k, v = (t.view(shape).transpose(1, 2) for t in qkv.split(sizes, -1))
    family = sys.modules[type(attn).__module__]
    cos, sin = position_embeddings
    q, k = family.apply_rotary_pos_emb(q, k, cos, sin)
    if cache is not None:
        k, v = cache.update(k, v, attn.layer_idx, kwargs=kwargs)
    attention = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation,
                                                      family.eager_attention_forward)
    out, _ = attention(attn, q, k, v, attention_mask, dropout=0.0, scaling=attn.scaling,
                       sliding_window=getattr(attn, 'sliding_window', None), **kwargs)
    return out.reshape(*shape[:-2], -1)


def _fused_layer_forward(self, hidden_states, attention_mask=None, position_ids=None,
                         cache=None, use_cache=False, position_embeddings=None,
                         past_key_values=None, **kwargs):
    """HF's decoder layer (pre-norm attention and SwiGLU MLP, residual around each) as
    four `gemv_rows` products and the attention between them."""
    cache = cache if cache is not None else past_key_values
    if QKV not in self._buffers:
        return type(self).forward(
            self, hidden_states, attention_mask=attention_mask, position_ids=position_ids,
            cache=cache, use_cache=use_cache, position_embeddings=position_embeddings,
            **kwargs)
    attn, mlp, fused = self.self_attn, self.mlp, self._buffers
    qkv = gemv_rows(hidden_states, fused[QKV], fused.get(QKV_BIAS),
                    rms_eps=self.input_layernorm.variance_epsilon)
    out = _attention(attn, qkv, position_embeddings, attention_mask, cache, **kwargs)
    hidden_states = gemv_rows(out, attn.o_proj.weight, attn.o_proj.bias, residual=hidden_states)
    act = gemv_rows(hidden_states, fused[GATE_UP], fused.get(GATE_UP_BIAS), swiglu=True,
                    rms_eps=self.post_attention_layernorm.variance_epsilon)
    return gemv_rows(act, mlp.down_proj.weight, mlp.down_proj.bias, residual=hidden_states)


def _fusable(layer):
    """A Qwen2 / LLaMA decoder layer with SiLU gating and RMSNorms (scale and epsilon)."""
    return (type(layer).__name__ in LAYERS
            and layer.mlp.config.hidden_act in ('silu', 'swish')
            and all(hasattr(norm, 'weight') and hasattr(norm, 'variance_epsilon')
                    for norm in (layer.input_layernorm, layer.post_attention_layernorm)))


def _stacked(linears):
    """Empty (weight, bias or None) for the linears stacked along their outputs."""
    rows = sum(m.out_features for m in linears)
    first = linears[0].weight
    weight = first.new_empty(rows, first.shape[1])
    bias = None if all(m.bias is None for m in linears) else first.new_empty(rows)
    for t in (weight, bias):
        if t is not None and t.is_cuda:
            torch._dynamo.mark_static_address(t)  # a fixed input of the CUDA graph
    return weight, bias


class FusedProjections:
    """The norm-scaled, concatenated q/k/v and gate/up weights of one HF model's Qwen2 /
    LLaMA decoder layers (allocated on first use: about 60 % of a 3B model's weights) and
    the context that runs the layers on them."""

    def __init__(self, llm):
        self.llm = llm
        self.groups = []  # (layer, buffer names, the RMSNorm before, the source linears)
        for layer in llm.modules():
            if _fusable(layer):
                attn, mlp = layer.self_attn, layer.mlp
                self.groups.append((layer, (QKV, QKV_BIAS), layer.input_layernorm,
                                    (attn.q_proj, attn.k_proj, attn.v_proj)))
                self.groups.append((layer, (GATE_UP, GATE_UP_BIAS),
                                    layer.post_attention_layernorm,
                                    (mlp.gate_proj, mlp.up_proj)))
        self.tensors = None
        # one bound fused forward per layer, the same object on every use (a compiled step
        # that reads it keeps its guards)
        self._forwards = {}
        for layer, _, _, _ in self.groups:
            self._forwards.setdefault(layer, types.MethodType(_fused_layer_forward, layer))

    @torch.no_grad()
    def refresh(self):
        """Write the model's current weights, times the norm scale, into the fused tensors."""
        if self.tensors is None or any(  # first use, or the model moved / was cast since
                (w.device, w.dtype) != (linears[0].weight.device, linears[0].weight.dtype)
                for (_, _, _, linears), (w, _) in zip(self.groups, self.tensors)):
            self.tensors = [_stacked(linears) for _, _, _, linears in self.groups]
        for (_, _, norm, linears), (weight, bias) in zip(self.groups, self.tensors):
            start = 0
            for m in linears:
                end = start + m.out_features
                torch.mul(m.weight, norm.weight, out=weight[start:end])
                if bias is not None:
                    bias[start:end] = m.bias if m.bias is not None else 0
                start = end

    @contextlib.contextmanager
    def active(self):
        """Within the block this model's Qwen2 / LLaMA decoder layers run on the fused
        weights (refreshed on entry): each layer instance gets the fused ``forward`` as its
        own attribute and the fused tensors as buffers. On exit each layer gets back what
        it had on entry (so a nested use, even on the same model, unwinds to the outer
        one's state); the classes are never changed."""
        self.refresh()
        names = (QKV, QKV_BIAS, GATE_UP, GATE_UP_BIAS)
        saved = [(layer, layer.__dict__.get('forward'),
                  {n: layer._buffers[n] for n in names if n in layer._buffers})
                 for layer in self._forwards]
        for layer, forward in self._forwards.items():
            layer.forward = forward  # an instance attribute, found before the class's method
        for (layer, group_names, _, _), tensors in zip(self.groups, self.tensors):
            for name, t in zip(group_names, tensors):
                if t is not None:
                    layer.register_buffer(name, t, persistent=False)
        try:
            yield self.llm
        finally:
            for layer, forward, buffers in reversed(saved):
                for name in names:
                    layer._buffers.pop(name, None)
                layer._buffers.update(buffers)
                if forward is None:
                    del layer.forward
                else:
                    layer.forward = forward
