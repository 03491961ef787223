"""Autoregressive image-token sampling with classifier-free guidance.

`CFGSampler` is the fast path: a preallocated static KV cache, the cond and uncond rows
of every prompt in one batch, and the whole decode step (LLM forward, visual slice of
the head, guidance, filtering, the draw) captured as one compiled graph on GPU.
`reference_generate` is the plain loop it must agree with token for token (HF model,
dynamic cache, eager). It draws through `draw_tokens` (settings as Python values), the
sampler through `draw_tokens_knobs` (settings as a tensor, so the compiled step never
recompiles for them), which gives the same tokens for the same logits and seed.
"""
import contextlib
import inspect
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


# a decode step's sampling settings as one float tensor (`_Sampling.knobs`): read inside the
# compiled step as data, so no value of them is a guard of the graph (no recompile per setting)
SCALE, TEMPERATURE, GREEDY, TOP_K, TOP_P, GUIDED = range(6)


def draw_tokens_knobs(logits_cond, logits_uncond, knobs, filtered=True):
    """`draw_tokens` with its settings in ``knobs`` (a [6] tensor: guidance scale,
    temperature, greedy flag, top-k, top-p, guided flag; see `_Sampling.knobs`), the same
    tokens for the same RNG state. Greedy and guidance are flags (both branches are
    computed, one is kept); top-k is the k-th largest value of one sort (k clamped to the
    row: top_k 0 is k = vocabulary size), top-p the same prefix rule on that sort (p = inf:
    off). ``filtered=False`` leaves the sort out (top-k / top-p must be off): a full sort
    of 196,608 logits per step costs more than the rest of the draw."""
    logits = logits_cond.float()
    if logits_uncond is not None:
        uncond = logits_uncond.float()
        logits = torch.where(knobs[GUIDED] > 0, uncond + knobs[SCALE] * (logits - uncond),
                             logits)
    greedy = _argmax(logits)
    logits = logits / knobs[TEMPERATURE]
    if filtered:
        logits = _filter_by_knobs(logits, knobs[TOP_K], knobs[TOP_P])
    sampled = _argmax(logits - torch.empty_like(logits).exponential_().log())
    return torch.where(knobs[GREEDY] > 0, greedy, sampled)


def _filter_by_knobs(logits, top_k, top_p):
    """`filter_logits` with 0-d tensor settings (top_k >= vocabulary size or top_p = inf:
    off), from one descending sort: the top-k threshold is the k-th sorted value, and the
    sorted row with it applied is the sorted row `filter_logits` takes top-p on."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    k = top_k.clamp(1, logits.shape[-1]).long() - 1
    kth = sorted_logits.gather(-1, k.expand(logits.shape[0], 1))
    logits = logits.masked_fill(logits < kth, float('-inf'))
    sorted_logits = sorted_logits.masked_fill(sorted_logits < kth, float('-inf'))
    probs = sorted_logits.softmax(-1)
    drop_sorted = (probs.cumsum(-1) - probs) >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float('-inf'))


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

    @property
    def filtered(self):
        """Whether top-k or top-p is on (the draw then sorts the logits)."""
        return bool(self.top_k) or self.top_p < 1

    def knobs(self, num_steps, guided, device):
        """The settings of every decode step as rows of `draw_tokens_knobs`' ``knobs``
        [num_steps, 6] on ``device`` (up front: a host value per step would sync)."""
        greedy = self.temperature == 0
        row = [0.0] * 6
        row[TEMPERATURE] = 1.0 if greedy else self.temperature
        row[GREEDY], row[GUIDED] = float(greedy), float(guided)
        row[TOP_K] = self.top_k or float('inf')
        row[TOP_P] = self.top_p if self.top_p < 1 else float('inf')
        rows = [list(row) for _ in range(num_steps)]
        for step, r in enumerate(rows):
            r[SCALE] = self.scale(step, num_steps)
        return torch.tensor(rows, dtype=torch.float32, device=device)


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


def batch_buckets(max_batch):
    """The batch sizes the compiled step is built for: powers of two below ``max_batch``,
    and ``max_batch`` itself."""
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= 2
    return sizes + [max_batch]


ISOLATED_COMPILE = 'isolate_recompiles' in inspect.signature(torch.compile).parameters
SHARED_RECOMPILE_LIMIT = 64  # without isolation: the limit while a sampler runs


def _compile_step(fn, limit, **kwargs):
    """``torch.compile(fn)`` with its own budget of ``limit`` graphs where torch has
    per-call budgets (``isolate_recompiles``): dynamo otherwise counts recompiles per code
    object, i.e. over every sampler in the process, against one limit (8 by default),
    which `_recompile_budget` then raises while a sampler runs."""
    if ISOLATED_COMPILE:
        kwargs.update(isolate_recompiles=True, recompile_limit=limit)
    return torch.compile(fn, **kwargs)


def _recompile_budget(compiled):
    """Within the block dynamo's process-wide recompile limit is at least
    `SHARED_RECOMPILE_LIMIT` when ``compiled`` steps share it (a torch without per-call
    budgets); otherwise nothing changes."""
    if not compiled or ISOLATED_COMPILE:
        return contextlib.nullcontext()
    config = torch._dynamo.config
    name = 'recompile_limit' if hasattr(config, 'recompile_limit') else 'cache_size_limit'
    return config.patch(**{name: max(getattr(config, name), SHARED_RECOMPILE_LIMIT)})


class CFGSampler:
    """Fast CFG sampling for a `GenerationMLLM`-like model (``llm``, ``visual_head``,
    ``text_vocab``, ``num_image_tokens``, ``tokenizer``).

    The KV cache is an HF `StaticCache` sized for ``max_batch`` prompts (x2 rows with
    guidance) of up to ``max_prompt_len`` tokens plus the image; on CUDA the decode
    step is compiled with CUDA graphs (``torch.compile`` options ``COMPILE_TUNING[tuning]``,
    ``backend``), with guidance and sampling inside the graph, whose draws come from
    inductor's random stream (same seed, same tokens; not the eager RNG's).

    Compiled, a call never recompiles for its settings: they enter the graph as a tensor
    (`draw_tokens_knobs`), and a batch runs in the smallest of `batch_buckets` (max_batch)
    that holds it, padded with copies of its last prompt whose images are dropped; calls
    without guidance run with their own prompts as the unconditional rows and guidance
    off. So a sampler builds at most one graph per bucket without top-k / top-p and one
    with (which sorts the logits every step), each bucket with its own cache.
    ``compile=False`` runs the same step eagerly on the rows as given (the CPU default),
    which draws exactly like `reference_generate`.

    ``gqa_decode`` runs attention through `gqa_decode_attention` (no ``repeat_kv`` of
    the cache); False keeps HF's SDPA (a benchmark comparison). ``fuse_projections``
    runs each decoder layer of this model as four weight products on norm-scaled,
    concatenated weights, through a Triton matrix-vector kernel at batch 1 on a GPU
    (`FusedProjections`, `gemv_rows`; docs/performance.md; costs the memory of the q/k/v
    and gate/up weights once more)."""

    def __init__(self, model, max_batch=1, max_prompt_len=128, compile=None,
                 tuning='coordinate_descent', gqa_decode=True, fuse_projections=True,
                 backend='inductor'):
        if tuning not in COMPILE_TUNING:
            raise ValueError(f'tuning {tuning!r} is not one of {sorted(COMPILE_TUNING)}')
        self.model = model
        self.max_batch = max_batch
        self.max_prompt_len = max_prompt_len
        self.gqa_decode = gqa_decode
        self.fused = FusedProjections(model.llm) if fuse_projections else None
        self.device = model.llm.device
        self.compile = self.device.type == 'cuda' if compile is None else compile
        self.buckets = batch_buckets(max_batch)
        self._caches = {}  # (rows, length) -> StaticCache
        self._jacobi_steps = {}  # (window, filtered) -> compiled SJD pass
        self.last_passes = None
        self.backend = backend
        self.options = options = COMPILE_TUNING[tuning] if backend == 'inductor' else None
        if self.compile:
            # unfiltered and filtered draws: two compiled steps, each one graph per bucket
            # (a budget of twice that, so an unforeseen guard costs a compile, not an error)
            self._steps = {filtered: _compile_step(
                self._decode_step, 2 * len(self.buckets), fullgraph=True, dynamic=False,
                backend=backend, options=options) for filtered in (False, True)}
        else:
            self._steps = {False: self._decode_step, True: self._decode_step}

    @property
    def _step_fn(self):
        """The decode step as it runs after the first token (compiled or not)."""
        return self._steps[False]

    def _cache_for(self, rows, length=None):
        """The static cache for ``rows`` rows of ``length`` slots (default `max_len`),
        reset: one per bucket and length when compiled (the graphs read its tensors), the
        last one only when eager."""
        from transformers import StaticCache
        length = length or self.max_len
        cache = self._caches.get((rows, length))
        if cache is None:
            if not self.compile:
                self._caches.clear()
            # its layers allocate [rows, heads, length, dim] on the first (prefill) update
            cache = self._caches[rows, length] = StaticCache(config=self.model.llm.config,
                                                             max_cache_len=length)
        else:
            cache.reset()
        return cache

    @property
    def max_len(self):
        """Cache length: prompt and image rounded up to a multiple of 64, so the attention
        matmuls over the cache get aligned strides (an odd length drops cuBLAS to slow
        unaligned kernels); the mask hides the spare slots."""
        return self._aligned(self.max_prompt_len + self.model.num_image_tokens)

    @staticmethod
    def _aligned(length):
        return -(-length // 64) * 64

    def _decode_step(self, token_ids, positions, mask, knobs, cache, batch, guided, filtered):
        out = self.model.llm.model(input_ids=token_ids, attention_mask=mask,
                                   position_ids=positions, cache=cache, use_cache=True)
        hc, hu = _split(out.last_hidden_state[:, -1], batch, guided)
        return self.model.visual_head.sample(
            hc, hu, lambda lc, lu: draw_tokens_knobs(lc, lu, knobs, filtered))

    def _layout(self, prompts, uncond):
        """(rows, batch rows, guided rows): the rows as given when eager; when compiled the
        bucket's rows (prompts padded with copies of the last one, then their unconditional
        rows, or the prompts again when there are none)."""
        if not self.compile:
            return _rows(prompts, uncond), len(prompts), uncond is not None
        _rows(prompts, uncond)  # checks them
        bucket = next(b for b in self.buckets if b >= len(prompts))
        pad = bucket - len(prompts)
        cond = list(prompts) + [prompts[-1]] * pad
        other = cond if uncond is None else list(uncond) + [uncond[-1]] * pad
        return cond + other, bucket, True

    @torch.no_grad()
    def generate(self, prompts, uncond=None, progress=None, jacobi_window=None, **sampling):
        """Global visual ids [B, num_image_tokens] for ``prompts`` (token id lists ending
        in ``<boi>``), guided by ``uncond`` (the unconditional prompts) when given.
        ``progress(done, total)`` is called after each token position is drawn (a web
        page's progress bar); it runs on the host between steps and changes no draw.
        ``jacobi_window=W`` decodes by speculative Jacobi decoding (`_generate_jacobi`:
        up to W tokens per forward pass, the same distribution; one prompt at a time).
        ``last_passes`` is then the number of forward passes of the call (prefill
        included; num_image_tokens without SJD)."""
        if jacobi_window is not None:
            return self._generate_jacobi(prompts, uncond, jacobi_window, progress, **sampling)
        opts = _Sampling(**sampling)
        model, n = self.model, self.model.num_image_tokens
        batch = len(prompts)
        if batch > self.max_batch:
            raise ValueError(f'{batch} prompts exceed max_batch={self.max_batch}')
        self.last_passes = n
        rows, step_batch, guided = self._layout(prompts, uncond)
        ids, mask, positions = _left_pad(rows, model.tokenizer.pad_token_id or 0, self.device)
        length = ids.shape[1]
        if length > self.max_prompt_len:
            raise ValueError(f'a prompt of {length} tokens exceeds max_prompt_len='
                             f'{self.max_prompt_len}')
        cache = self._cache_for(len(rows))
        full_mask = mask.new_zeros(len(rows), self.max_len)
        full_mask[:, :length] = mask
        out_ids = torch.empty(step_batch, n, dtype=torch.long, device=self.device)
        knobs = opts.knobs(n, uncond is not None, self.device)
        step_fn, filtered = self._steps[opts.filtered], opts.filtered
        with torch.random.fork_rng(devices=[self.device] if self.device.type == 'cuda' else []), \
                _recompile_budget(self.compile), \
                gqa_decode_attention_for(model.llm, self.gqa_decode), \
                (self.fused.active() if self.fused else contextlib.nullcontext()):
            torch.manual_seed(opts.seed)
            g = self._decode_step(ids, positions, full_mask, knobs[0], cache, step_batch,
                                  guided, filtered)
            positions = positions[:, -1:].clone()
            for step in range(1, n):
                if progress is not None:
                    progress(step, n)
                out_ids[:, step - 1] = g
                full_mask[:, length + step - 1] = 1
                positions += 1
                token = (model.text_vocab + g).repeat(2 if guided else 1)[:, None]
                g = step_fn(token, positions, full_mask, knobs[step], cache, step_batch,
                            guided, filtered)
                if self.compile:
                    g = g.clone()  # the graph's output buffer is overwritten by the next replay
            out_ids[:, n - 1] = g
        if progress is not None:
            progress(n, n)
        return out_ids[:batch]

    # ------------------------------------------------ speculative Jacobi decoding
    def _jacobi_step(self, last, state, done, base_positions, mask, knobs, cache, guided,
                     filtered, window):
        """One SJD pass: the LLM over [last accepted token, drafts] (``window`` query
        positions per row, at ``base_positions + done``), the verification
        (`speculative.jacobi_pass`) and the rollback of the cache entries past the
        accepted tokens. Returns the window's tokens, their count, the next drafts'
        state and the new number of accepted tokens."""
        from unimm.inference.speculative import jacobi_pass, levels_for
        model = self.model
        levels = levels_for(model.visual_head)
        ids = (torch.cat([last, levels.ids(state)]) + model.text_vocab)[None]
        ids = ids.expand(2, window) if guided else ids
        out = model.llm.model(input_ids=ids, attention_mask=mask,
                              position_ids=base_positions + done, cache=cache, use_cache=True)
        hidden = out.last_hidden_state
        hc, hu = hidden[0], (hidden[1] if guided else None)
        slots = torch.arange(window, device=hidden.device)
        step_knobs = knobs[(done + slots).clamp(max=model.num_image_tokens - 1)]
        tokens, count, next_state = jacobi_pass(levels, hc, hu, step_knobs, state, window,
                                                filtered)
        for layer in cache.layers:  # entries past the accepted tokens are rewritten next
            layer.cumulative_length.sub_(window - count)
        return tokens, count, next_state, done + count

    def _jacobi_fn(self, window, filtered):
        """The SJD pass, compiled once per window and draw kind when the sampler compiles."""
        if not self.compile:
            return self._jacobi_step
        key = (window, filtered)
        if key not in self._jacobi_steps:
            self._jacobi_steps[key] = _compile_step(
                self._jacobi_step, 2, fullgraph=True, dynamic=False, backend=self.backend,
                options=self.options)
        return self._jacobi_steps[key]

    @torch.no_grad()
    def _generate_jacobi(self, prompts, uncond, window, progress=None, **sampling):
        """`generate` by speculative Jacobi decoding (unimm/inference/speculative.py) with
        ``window`` query positions a pass: the last accepted token and ``window - 1``
        drafts, so a pass yields 1 to ``window`` tokens (1: the plain loop). One prompt
        (cond and uncond rows; compiled, an unguided call runs its prompt as the uncond
        row with guidance off); the cache has ``window`` spare slots for the pass that
        runs past the image. Sets ``last_passes``."""
        from unimm.inference.speculative import levels_for
        if not isinstance(window, int) or window < 1:
            raise ValueError(f'jacobi_window must be an int >= 1, not {window!r}')
        if len(prompts) != 1:
            raise ValueError(f'speculative Jacobi decoding draws one prompt at a time (batch 1, '
                             f'its goal is latency); got {len(prompts)} prompts')
        opts = _Sampling(**sampling)
        model, n = self.model, self.model.num_image_tokens
        if self.compile:
            _rows(prompts, uncond)
            rows, guided = list(prompts) + list(uncond or prompts), True
        else:
            rows, guided = _rows(prompts, uncond), uncond is not None
        ids, mask, positions = _left_pad(rows, model.tokenizer.pad_token_id or 0, self.device)
        length = ids.shape[1]
        if length > self.max_prompt_len:
            raise ValueError(f'a prompt of {length} tokens exceeds max_prompt_len='
                             f'{self.max_prompt_len}')
        max_len = self._aligned(self.max_prompt_len + n + window)
        cache = self._cache_for(len(rows), max_len)
        # causal masking hides every slot past the query, so the image slots are all on
        full_mask = mask.new_ones(len(rows), max_len)
        full_mask[:, :length] = mask
        knobs = opts.knobs(n, uncond is not None, self.device)
        filtered, levels = opts.filtered, levels_for(model.visual_head)
        step = self._jacobi_fn(window, filtered)
        out_ids = torch.empty(1, n, dtype=torch.long, device=self.device)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == 'cuda' else []), \
                _recompile_budget(self.compile), \
                gqa_decode_attention_for(model.llm, self.gqa_decode), \
                (self.fused.active() if self.fused else contextlib.nullcontext()):
            torch.manual_seed(opts.seed)
            out = model.llm.model(input_ids=ids, attention_mask=full_mask, position_ids=positions,
                                  cache=cache, use_cache=True)
            hc, hu = _split(out.last_hidden_state[:, -1], 1, guided)
            first = torch.zeros(max(window - 1, 1), dtype=torch.long, device=self.device)
            target = levels.target(hc, hu, knobs[:1], filtered)
            token, _ = levels.draw(hc, hu, knobs[:1], target, first[:1], filtered)
            _, state = levels.draw(hc, hu, knobs[:1], target, first[:window - 1], filtered)
            out_ids[0, 0] = token[0]
            # the image token at slot k of a pass after ``done`` tokens sits at position
            # (<boi>'s) + done + k
            base = positions[:, -1:] + torch.arange(window, device=self.device)
            done, accepted, passes = torch.ones((), dtype=torch.long, device=self.device), 1, 1
            while accepted < n:
                if progress is not None:
                    progress(accepted, n)
                tokens, count, state, done = step(token, state, done, base, full_mask, knobs,
                                                  cache, guided, filtered, window)
                if self.compile:  # the graph's outputs are overwritten by the next replay
                    tokens, done = tokens.clone(), done.clone()
                    state = tuple(t.clone() for t in state)
                count = min(int(count), n - accepted)
                out_ids[0, accepted:accepted + count] = tokens[:count]
                token = tokens[count - 1:count]
                accepted += count
                passes += 1
        if progress is not None:
            progress(n, n)
        self.last_passes = passes
        return out_ids
