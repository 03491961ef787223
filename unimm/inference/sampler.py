"""Autoregressive image-token sampling with classifier-free guidance.

`CFGSampler` is the fast path: a preallocated static KV cache, the cond and uncond rows
of every prompt in one batch, and the whole decode step (LLM forward, visual slice of
the head, guidance, filtering, the draw) captured as one compiled graph on GPU.
`reference_generate` is the plain loop it must agree with token for token (HF model,
dynamic cache, eager). Both draw through `draw_tokens`, so with the same seed the same
logits give the same tokens.
"""
import contextlib
import math

import torch

from unimm.inference.attention import gqa_decode_attention_for
from unimm.inference.fused import FusedProjections

SCHEDULES = ('constant', 'linear', 'cosine')


def cfg_scale_at(step, num_steps, scale, schedule='constant'):
    """Guidance scale at decode ``step``: constant, or rising from 1 to ``scale``
    over the image (linear / cosine), as in MUSE-style schedules."""
    if schedule not in SCHEDULES:
        raise ValueError(f'cfg_schedule {schedule!r} is not one of {SCHEDULES}')
    if schedule == 'constant' or num_steps <= 1:
        return float(scale)
    frac = step / (num_steps - 1)
    if schedule == 'cosine':
        frac = (1 - math.cos(math.pi * frac)) / 2
    return 1.0 + (scale - 1.0) * frac


def filter_logits(logits, top_k=0, top_p=1.0):
    """Logits outside the top-k / the top-p nucleus set to -inf (0 / 1.0: off)."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float('-inf'))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token once the mass before it already reaches top_p (the first always stays)
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float('-inf'))
    return logits


def draw_tokens(logits_cond, logits_uncond, scale, temperature=1.0, top_k=0, top_p=1.0):
    """Guided logits ``u + s * (c - u)``, then temperature, top-k / top-p, and one draw
    per row from the global RNG (exponential race: argmax of log p - log E, E ~ Exp(1),
    a categorical draw without a sync); temperature 0 is greedy."""
    logits = logits_cond.float()
    if logits_uncond is not None:
        logits = logits_uncond.float() + scale * (logits - logits_uncond.float())
    if temperature == 0:
        return _argmax(logits)
    # log p up to a per-row constant, which the argmax ignores (-inf: filtered out)
    logits = filter_logits(logits / temperature, top_k, top_p)
    return _argmax(logits - torch.empty_like(logits).exponential_().log())


def _argmax(x, chunk=2048):
    """``x.argmax(-1)`` as two reductions (within chunks, then across), so a GPU spreads
    one long row over many blocks instead of one."""
    n = x.shape[-1]
    if n <= chunk or n % chunk:
        return x.argmax(-1)
    best, where = x.unflatten(-1, (n // chunk, chunk)).max(-1)
    block = best.argmax(-1, keepdim=True)
    return (block * chunk + where.gather(-1, block)).squeeze(-1)


def _left_pad(prompts, pad_id, device):
    """Token ids [R, L] left-padded, the attention mask and per-row position ids."""
    length = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, length - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[r, length - len(p):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def _rows(prompts, uncond):
    if uncond is not None and len(uncond) != len(prompts):
        raise ValueError(f'{len(prompts)} prompts but {len(uncond)} unconditional prompts')
    if not prompts or any(len(p) == 0 for p in prompts + list(uncond or [])):
        raise ValueError('every prompt needs at least one token (its <boi>)')
    return list(prompts) + list(uncond or [])


class _Sampling:
    """The sampling options, checked once."""

    def __init__(self, cfg_scale=4.0, cfg_schedule='constant', temperature=1.0, top_k=0,
                 top_p=1.0, seed=0):
        cfg_scale_at(0, 2, cfg_scale, cfg_schedule)  # validates the schedule name
        if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
            raise ValueError(f'need temperature >= 0, 0 < top_p <= 1, top_k >= 0; got '
                             f'{temperature}, {top_p}, {top_k}')
        self.cfg_scale, self.cfg_schedule = cfg_scale, cfg_schedule
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed

    def draw(self, scale):
        return lambda lc, lu: draw_tokens(lc, lu, scale, self.temperature, self.top_k,
                                          self.top_p)

    def scale(self, step, num_steps):
        return cfg_scale_at(step, num_steps, self.cfg_scale, self.cfg_schedule)


def _split(hidden, batch, guided):
    return (hidden[:batch], hidden[batch:]) if guided else (hidden, None)


@torch.no_grad()
def reference_generate(model, prompts, uncond=None, **sampling):
    """The plain loop: HF forward with its dynamic cache, one token per step, eagerly.
    ``prompts`` / ``uncond``: token id lists ending in ``<boi>``; returns global visual
    ids [B, model.num_image_tokens]."""
    opts = _Sampling(**sampling)
    device = model.llm.device
    rows = _rows(prompts, uncond)
    batch, guided = len(prompts), uncond is not None
    ids, mask, positions = _left_pad(rows, model.tokenizer.pad_token_id or 0, device)
    out, cache, tokens = None, None, []
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
        torch.manual_seed(opts.seed)
        for step in range(model.num_image_tokens):
            out = model.llm.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                  cache=cache, use_cache=True)
            cache = out.cache
            hc, hu = _split(out.last_hidden_state[:, -1], batch, guided)
            g = model.visual_head.sample(hc, hu, opts.draw(opts.scale(step,
                                                                      model.num_image_tokens)))
            tokens.append(g)
            ids = (model.text_vocab + g).repeat(2 if guided else 1)[:, None]
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
            positions = positions[:, -1:] + 1
    return torch.stack(tokens, dim=1)


# torch.compile options of the decode step; all replay it as a CUDA graph
COMPILE_TUNING = {
    'default': {'triton.cudagraphs': True},  # = mode='reduce-overhead'
    # gpt-fast's setting: tunes the fused kernels' block sizes; and independent small
    # kernels (RoPE of q and k, the two cache writes) launched as one
    'coordinate_descent': {'triton.cudagraphs': True, 'coordinate_descent_tuning': True,
                           'combo_kernels': True},
    # also autotunes Triton GEMM templates against cuBLAS (minutes of compilation)
    'max_autotune': {'triton.cudagraphs': True, 'coordinate_descent_tuning': True,
                     'combo_kernels': True, 'max_autotune': True},
}


class CFGSampler:
    """Fast CFG sampling for a `GenerationMLLM`-like model (``llm``, ``visual_head``,
    ``text_vocab``, ``num_image_tokens``, ``tokenizer``).

    The KV cache is an HF `StaticCache` sized for ``max_batch`` prompts (x2 rows with
    guidance) of up to ``max_prompt_len`` tokens plus the image; on CUDA the decode
    step is compiled with CUDA graphs (``torch.compile`` options ``COMPILE_TUNING[tuning]``),
    with guidance and sampling inside the graph, whose draws come from inductor's random
    stream (same seed, same tokens; not the eager RNG's). ``compile=False`` runs the same
    step eagerly (the CPU default), which draws exactly like `reference_generate`.
    ``gqa_decode`` runs attention through `gqa_decode_attention` (no ``repeat_kv`` of
    the cache); False keeps HF's SDPA (a benchmark comparison). ``fuse_projections``
    runs each decoder layer as four weight products on norm-scaled, concatenated weights,
    through a Triton matrix-vector kernel at batch 1 on a GPU (`FusedProjections`,
    `gemv_rows`; docs/performance.md; costs the memory of the q/k/v and gate/up weights
    once more)."""

    def __init__(self, model, max_batch=1, max_prompt_len=128, compile=None,
                 tuning='coordinate_descent', gqa_decode=True, fuse_projections=True):
        if tuning not in COMPILE_TUNING:
            raise ValueError(f'tuning {tuning!r} is not one of {sorted(COMPILE_TUNING)}')
        self.model = model
        self.max_batch = max_batch
        self.max_prompt_len = max_prompt_len
        self.gqa_decode = gqa_decode
        self.fused = FusedProjections(model.llm) if fuse_projections else None
        self.device = model.llm.device
        self.compile = self.device.type == 'cuda' if compile is None else compile
        self._cache = None
        self._step_fn = torch.compile(self._decode_step, fullgraph=True, dynamic=False,
                                      options=COMPILE_TUNING[tuning]) \
            if self.compile else self._decode_step

    def _cache_for(self, rows):
        from transformers import StaticCache
        if self._cache is None or self._cache_rows != rows:
            llm = self.model.llm
            # its layers allocate [rows, heads, max_len, dim] on the first (prefill) update
            self._cache = StaticCache(config=llm.config, max_cache_len=self.max_len)
            self._cache_rows = rows
        else:
            self._cache.reset()
        return self._cache

    @property
    def max_len(self):
        """Cache length: prompt and image rounded up to a multiple of 64, so the attention
        matmuls over the cache get aligned strides (an odd length drops cuBLAS to slow
        unaligned kernels); the mask hides the spare slots."""
        return -(-(self.max_prompt_len + self.model.num_image_tokens) // 64) * 64

    def _decode_step(self, token_ids, positions, mask, scale, cache, batch, guided):
        out = self.model.llm.model(input_ids=token_ids, attention_mask=mask,
                                   position_ids=positions, cache=cache, use_cache=True)
        hc, hu = _split(out.last_hidden_state[:, -1], batch, guided)
        return self.model.visual_head.sample(hc, hu, self._opts.draw(scale))

    @torch.no_grad()
    def generate(self, prompts, uncond=None, progress=None, **sampling):
        """Global visual ids [B, num_image_tokens] for ``prompts`` (token id lists ending
        in ``<boi>``), guided by ``uncond`` (the unconditional prompts) when given.
        ``progress(done, total)`` is called after each token position is drawn (a web
        page's progress bar); it runs on the host between steps and changes no draw."""
        opts = _Sampling(**sampling)
        model, n = self.model, self.model.num_image_tokens
        rows = _rows(prompts, uncond)
        batch, guided = len(prompts), uncond is not None
        if batch > self.max_batch:
            raise ValueError(f'{batch} prompts exceed max_batch={self.max_batch}')
        ids, mask, positions = _left_pad(rows, model.tokenizer.pad_token_id or 0, self.device)
        length = ids.shape[1]
        if length > self.max_prompt_len:
            raise ValueError(f'a prompt of {length} tokens exceeds max_prompt_len='
                             f'{self.max_prompt_len}')
        cache = self._cache_for(len(rows))
        full_mask = mask.new_zeros(len(rows), self.max_len)
        full_mask[:, :length] = mask
        self._opts = opts
        out_ids = torch.empty(batch, n, dtype=torch.long, device=self.device)
        # on the device up front: a host scalar per step would sync the stream
        scales = torch.tensor([opts.scale(step, n) for step in range(n)], device=self.device)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == 'cuda' else []), \
                gqa_decode_attention_for(model.llm, self.gqa_decode), \
                (self.fused.active() if self.fused else contextlib.nullcontext()):
            torch.manual_seed(opts.seed)
            g = self._decode_step(ids, positions, full_mask, scales[0], cache, batch, guided)
            positions = positions[:, -1:].clone()
            for step in range(1, n):
                if progress is not None:
                    progress(step, n)
                out_ids[:, step - 1] = g
                full_mask[:, length + step - 1] = 1
                positions += 1
                token = (model.text_vocab + g).repeat(2 if guided else 1)[:, None]
                g = self._step_fn(token, positions, full_mask, scales[step], cache, batch, guided)
                if self.compile:
                    g = g.clone()  # the graph's output buffer is overwritten by the next replay
            out_ids[:, n - 1] = g
        if progress is not None:
            progress(n, n)
        return out_ids
