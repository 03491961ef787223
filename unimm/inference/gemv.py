"""Weight products of the decode step at a few rows, as a Triton matrix-vector kernel.

At batch 1 with guidance a decode step multiplies 2 rows by every weight: pure weight
reads. One program per output column streams that column's weight row and keeps the
rows' partial sums apart until one reduction at the end; what surrounds a product in a
decoder layer happens in the same pass (the RMS of x, bias, SiLU(gate) * up, the
residual add), so a layer is four kernels plus attention. On an H100 at 2 rows it reads
the 3B model's gate/up weight at 2.9 TB/s where cuBLAS reaches 2.7 (docs/performance.md).
"""
import types
from typing import Optional

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only torch: `gemv_rows` never asks for the kernel there
    triton, tl = None, types.SimpleNamespace(constexpr=None)

MAX_ROWS = 2  # more rows: torch / cuBLAS (faster at 4 rows, docs/performance.md); 0: always


def _jit(fn):
    return triton.jit(fn) if triton is not None else fn


@_jit
def _load(ptr, inside, EVEN_K: tl.constexpr, STREAM: tl.constexpr):
    """A float32 block of a row. STREAM: a weight row, read once: evicted first, so the
    rows of x and the KV cache stay in the caches."""
    if STREAM:
        if EVEN_K:
            return tl.load(ptr, eviction_policy='evict_first').to(tl.float32)
        return tl.load(ptr, mask=inside, other=0.0, eviction_policy='evict_first').to(tl.float32)
    if EVEN_K:
        return tl.load(ptr).to(tl.float32)
    return tl.load(ptr, mask=inside, other=0.0).to(tl.float32)


@_jit
def _store(y_ptr, b_ptr, r_ptr, n, HALF, gate, up, squares, K, eps, HAS_BIAS: tl.constexpr,
           SWIGLU: tl.constexpr, NORM: tl.constexpr, HAS_RES: tl.constexpr):
    """One output: sum(gate), over the row's RMS (NORM), + b[n], SWIGLU: SiLU of that
    times the same of ``up`` (+ b[n + HALF]), + r[n]."""
    y = tl.sum(gate, 0)
    if NORM:
        scale = tl.rsqrt(tl.sum(squares, 0) / K + eps)
        y *= scale
    if HAS_BIAS:
        y += tl.load(b_ptr + n).to(tl.float32)
    if SWIGLU:
        u = tl.sum(up, 0)
        if NORM:
            u *= scale
        if HAS_BIAS:
            u += tl.load(b_ptr + n + HALF).to(tl.float32)
        y = y * tl.sigmoid(y) * u
    if HAS_RES:
        y += tl.load(r_ptr + n).to(tl.float32)
    tl.store(y_ptr + n, y.to(y_ptr.dtype.element_ty))


@_jit
def _gemv_kernel(x_ptr, w_ptr, b_ptr, r_ptr, y_ptr, stride_x, stride_w, stride_r, stride_y,
                 HALF, eps, K: tl.constexpr, M: tl.constexpr, BK: tl.constexpr,
                 EVEN_K: tl.constexpr, HAS_BIAS: tl.constexpr, SWIGLU: tl.constexpr,
                 NORM: tl.constexpr, HAS_RES: tl.constexpr):
    """Program n: y[:M, n] from weight row n (SWIGLU: rows n and n + HALF); each of the
    M <= 4 rows keeps its own block of partial sums (and, NORM, of its squares: the RMS
    comes from the same pass over x), reduced once at the end."""
    n = tl.program_id(0)
    cols = tl.arange(0, BK)
    g0, g1, g2, g3 = (tl.zeros((BK,), tl.float32), tl.zeros((BK,), tl.float32),
                      tl.zeros((BK,), tl.float32), tl.zeros((BK,), tl.float32))
    u0, u1, u2, u3 = (tl.zeros((BK,), tl.float32), tl.zeros((BK,), tl.float32),
                      tl.zeros((BK,), tl.float32), tl.zeros((BK,), tl.float32))
    s0, s1, s2, s3 = (tl.zeros((BK,), tl.float32), tl.zeros((BK,), tl.float32),
                      tl.zeros((BK,), tl.float32), tl.zeros((BK,), tl.float32))
    for k in range(0, K, BK):
        inside = k + cols < K
        w = _load(w_ptr + n * stride_w + k + cols, inside, EVEN_K, True)
        x0 = _load(x_ptr + k + cols, inside, EVEN_K, False)
        g0 += w * x0
        if NORM:
            s0 += x0 * x0
        if M > 1:
            x1 = _load(x_ptr + stride_x + k + cols, inside, EVEN_K, False)
            g1 += w * x1
            if NORM:
                s1 += x1 * x1
        if M > 2:
            x2 = _load(x_ptr + 2 * stride_x + k + cols, inside, EVEN_K, False)
            g2 += w * x2
            if NORM:
                s2 += x2 * x2
        if M > 3:
            x3 = _load(x_ptr + 3 * stride_x + k + cols, inside, EVEN_K, False)
            g3 += w * x3
            if NORM:
                s3 += x3 * x3
        if SWIGLU:
            v = _load(w_ptr + (n + HALF) * stride_w + k + cols, inside, EVEN_K, True)
            u0 += v * x0
            if M > 1:
                u1 += v * x1
            if M > 2:
                u2 += v * x2
            if M > 3:
                u3 += v * x3
    _store(y_ptr, b_ptr, r_ptr, n, HALF, g0, u0, s0, K, eps,
           HAS_BIAS, SWIGLU, NORM, HAS_RES)
    if M > 1:
        _store(y_ptr + stride_y, b_ptr, r_ptr + stride_r, n, HALF, g1, u1, s1, K, eps,
               HAS_BIAS, SWIGLU, NORM, HAS_RES)
    if M > 2:
        _store(y_ptr + 2 * stride_y, b_ptr, r_ptr + 2 * stride_r, n, HALF, g2, u2, s2, K, eps,
               HAS_BIAS, SWIGLU, NORM, HAS_RES)
    if M > 3:
        _store(y_ptr + 3 * stride_y, b_ptr, r_ptr + 3 * stride_r, n, HALF, g3, u3, s3, K, eps,
               HAS_BIAS, SWIGLU, NORM, HAS_RES)


def config(k, n):
    """(K per step, warps) for a [n, k] weight: at 2 rows on an H100 the fastest of 256-2048
    x 1-8 warps for the 3B shapes with their epilogues (docs/performance.md). Small blocks
    for the long rows of down: fewer registers, so more programs in flight."""
    if k > 4096:
        return 256, 4
    return (512, 4) if n >= 8192 else (2048, 2)


def launch(kernel, x, weight, bias=None, swiglu=False, rms_eps=None, residual=None,
           settings=None):
    """`gemv_rows` for x [M <= 4, K] and ``weight`` [N, K] (SWIGLU: [2N, K], gate rows then
    up rows) through ``kernel`` (`_gemv_kernel`, or its `wrap_triton` in a compiled graph);
    ``settings``: (K per step, warps), by default `config`'s."""
    rows, k = x.shape
    if rows > 4:
        raise ValueError(f'the matrix-vector kernel takes at most 4 rows, not {rows}')
    n = weight.shape[0] // 2 if swiglu else weight.shape[0]
    block, warps = settings or config(k, weight.shape[0])
    block = min(block, triton.next_power_of_2(k))
    y = x.new_empty(rows, n)
    kernel[(n,)](x, weight, weight if bias is None else bias,
                 y if residual is None else residual, y, x.stride(0), weight.stride(0),
                 0 if residual is None else residual.stride(0), y.stride(0),
                 n if swiglu else 0, 0.0 if rms_eps is None else rms_eps, K=k, M=rows,
                 BK=block, EVEN_K=k % block == 0, HAS_BIAS=bias is not None, SWIGLU=swiglu,
                 NORM=rms_eps is not None, HAS_RES=residual is not None, num_warps=warps)
    return y


if triton is not None:
    @torch.library.triton_op('unimm::gemv', mutates_args=())
    def _gemv_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                 swiglu: bool, rms_eps: Optional[float],
                 residual: Optional[torch.Tensor]) -> torch.Tensor:
        return launch(torch.library.wrap_triton(_gemv_kernel), x, weight, bias, swiglu,
                      rms_eps, residual)


def gemv_rows(x, weight, bias=None, swiglu=False, rms_eps=None, residual=None):
    """``F.linear(x, weight, bias)``, where ``rms_eps`` given, of x over its RMS
    (an RMSNorm without scale: fold the scale into ``weight``); ``swiglu``: then SiLU of
    the first half of the outputs times the second half; plus ``residual`` where given.
    Through the Triton kernel for at most `MAX_ROWS` rows on a CUDA device with a
    row-major weight, otherwise through torch."""
    lead, k = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, k)
    if (triton is not None and x.is_cuda and flat.shape[0] <= MAX_ROWS
            and weight.stride(-1) == 1 and k % 8 == 0):
        res = None if residual is None else residual.reshape(flat.shape[0], -1).contiguous()
        y = torch.ops.unimm.gemv(flat.contiguous(), weight, bias, swiglu, rms_eps, res)
        return y.reshape(*lead, y.shape[-1])
    if rms_eps is not None:
        x32 = x.float()
        x = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + rms_eps)).to(x.dtype)
    y = torch.nn.functional.linear(x, weight, bias)
    if swiglu:
        gate, up = y.chunk(2, -1)
        y = torch.nn.functional.silu(gate) * up
    return y if residual is None else residual + y
