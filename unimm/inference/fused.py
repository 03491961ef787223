"""One weight read for q/k/v and one for gate/up in the decode step of an HF Qwen2 / LLaMA.

At decode the rows are few (2 per prompt with guidance): every projection is a weight
read, and the small k/v projections are launch-bound. `FusedProjections` keeps each
layer's q/k/v and gate/up weights concatenated, refreshed in place from the model on
every use (the same tensors each time, so compiled graphs and CUDA graphs keep their
addresses, and weights trained since are picked up), and within `active` the attention
and MLP classes run forwards that read them. At a few rows on a GPU a layer's weight products (q/k/v, o,
gate/up, down) go through `gemv_rows`, a Triton matrix-vector kernel (gate/up with
SiLU * up in its epilogue). Other layers and classes are untouched.
"""
import contextlib
import sys

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from unimm.inference.gemv import gemv_rows

ATTENTION = ('Qwen2Attention', 'LlamaAttention')
MLP = ('Qwen2MLP', 'LlamaMLP')
QKV, QKV_BIAS, GATE_UP, GATE_UP_BIAS = ('unimm_qkv_weight', 'unimm_qkv_bias',
                                        'unimm_gate_up_weight', 'unimm_gate_up_bias')
_ORIGINAL_FORWARD = {}  # class -> its own forward, while patched


def _fused_attention_forward(self, hidden_states, position_embeddings=None,
                             attention_mask=None, cache=None, past_key_values=None, **kwargs):
    """HF's Qwen2 / LLaMA attention with q, k and v from one GEMM."""
    cache = cache if cache is not None else past_key_values
    if QKV not in self._buffers:
        return _ORIGINAL_FORWARD[type(self)](self, hidden_states, position_embeddings,
                                             attention_mask, cache=cache, **kwargs)
    shape = (*hidden_states.shape[:-1], -1, self.head_dim)
    qkv = gemv_rows(hidden_states, self._buffers[QKV], self._buffers.get(QKV_BIAS))
    sizes = (self.q_proj.out_features, self.k_proj.out_features, self.v_proj.out_features)
    q, k, v = (t.view(shape).transpose(1, 2) for t in qkv.split(sizes, -1))
    family = sys.modules[type(self).__module__]
    cos, sin = position_embeddings
    q, k = family.apply_rotary_pos_emb(q, k, cos, sin)
    if cache is not None:
        k, v = cache.update(k, v, self.layer_idx, kwargs=kwargs)
    attention = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation,
                                                      family.eager_attention_forward)
    out, weights = attention(self, q, k, v, attention_mask, dropout=0.0, scaling=self.scaling,
                             sliding_window=getattr(self, 'sliding_window', None), **kwargs)
    o = self.o_proj
    return gemv_rows(out.reshape(*shape[:-2], -1), o.weight, o.bias), weights


def _fused_mlp_forward(self, x):
    """SwiGLU with gate and up from one weight read."""
    if GATE_UP not in self._buffers:
        return _ORIGINAL_FORWARD[type(self)](self, x)
    hidden = gemv_rows(x, self._buffers[GATE_UP], self._buffers.get(GATE_UP_BIAS), swiglu=True)
    return gemv_rows(hidden, self.down_proj.weight, self.down_proj.bias)


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
    """The concatenated weights of one HF model's Qwen2 / LLaMA layers (allocated on first
    use: the size of the q/k/v and gate/up weights, about 60 % of a 3B model's) and the
    context that runs on them."""

    def __init__(self, llm):
        self.llm = llm
        self.groups = []  # (module, its buffer names, the source linears)
        for module in llm.modules():
            name = type(module).__name__
            if name in ATTENTION:
                self.groups.append((module, (QKV, QKV_BIAS),
                                    (module.q_proj, module.k_proj, module.v_proj)))
            elif name in MLP and module.config.hidden_act in ('silu', 'swish'):
                self.groups.append((module, (GATE_UP, GATE_UP_BIAS),
                                    (module.gate_proj, module.up_proj)))
        self.tensors = None

    @torch.no_grad()
    def refresh(self):
        """Copy the model's current weights into the fused tensors."""
        if self.tensors is None or any(  # first use, or the model moved / was cast since
                (w.device, w.dtype) != (linears[0].weight.device, linears[0].weight.dtype)
                for (_, _, linears), (w, _) in zip(self.groups, self.tensors)):
            self.tensors = [_stacked(linears) for _, _, linears in self.groups]
        dst, src = [], []
        for (_, _, linears), (weight, bias) in zip(self.groups, self.tensors):
            start = 0
            for m in linears:
                end = start + m.out_features
                dst.append(weight[start:end])
                src.append(m.weight)
                if bias is not None:
                    dst.append(bias[start:end])
                    src.append(m.bias if m.bias is not None else bias.new_zeros(m.out_features))
                start = end
        torch._foreach_copy_(dst, src)  # a few multi-tensor kernels, not one copy per linear

    @contextlib.contextmanager
    def active(self):
        """Within the block the model's Qwen2 / LLaMA attention and MLP layers run on the
        fused weights (refreshed on entry); on exit the model is as it was."""
        self.refresh()
        classes = {type(m) for m, _, _ in self.groups}
        for cls in classes:
            _ORIGINAL_FORWARD[cls] = cls.forward
            cls.forward = _fused_attention_forward if cls.__name__ in ATTENTION \
                else _fused_mlp_forward
        for (module, names, _), tensors in zip(self.groups, self.tensors):
            for name, t in zip(names, tensors):
                if t is not None:
                    module.register_buffer(name, t, persistent=False)
        try:
            yield self.llm
        finally:
            for module, names, _ in self.groups:
                for name in names:
                    module._buffers.pop(name, None)
            for cls in classes:
                cls.forward = _ORIGINAL_FORWARD.pop(cls)
