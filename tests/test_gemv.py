"""The decode step's Triton matrix-vector kernel (unimm.inference.gemv): its arithmetic on
the CPU through Triton's interpreter, and on a GPU when there is one."""
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip('triton')

# (rows, K, swiglu, bias, RMS-normalised x, residual): even and ragged K (one block,
# several, a masked tail), 1-4 rows, every epilogue alone and together
CASES = [(1, 96, False, False, False, False), (2, 2048, True, False, False, False),
         (3, 3000, False, True, False, False), (4, 256, True, True, True, False),
         (2, 1000, False, False, True, True), (2, 5000, False, True, True, True),
         (1, 2048, True, False, True, True)]

CHECK = '''
import json, sys, torch
from unimm.inference.gemv import _gemv_kernel, launch
torch.manual_seed(0)
errors = []
for rows, k, swiglu, bias, norm, res in json.loads(sys.argv[1]):
    n = 24
    x = torch.randn(rows, k) * 3
    w = torch.randn(2 * n if swiglu else n, k) / k ** 0.5
    b = torch.randn(w.shape[0]) if bias else None
    r = torch.randn(rows, n) if res else None
    eps = 1e-6 if norm else None
    y = launch(_gemv_kernel, x, w, b, swiglu, eps, r)
    xd = x.double()
    if norm:
        xd = xd / (xd.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    ref = torch.nn.functional.linear(xd, w.double(), None if b is None else b.double())
    if swiglu:
        ref = torch.nn.functional.silu(ref[:, :n]) * ref[:, n:]
    if res:
        ref = ref + r.double()
    errors.append(((y.double() - ref).norm() / ref.norm()).item())
print(json.dumps(errors))
'''


def test_gemv_kernel_matches_float64_in_the_triton_interpreter():
    """Every output of the kernel (plain, + bias, x over its RMS, SiLU(gate) * up,
    + residual) within float32 rounding of a float64 reference, for 1-4 rows and K that
    fills or ragged-ends its blocks."""
    import json
    env = dict(os.environ, TRITON_INTERPRET='1')
    out = subprocess.run([sys.executable, '-c', CHECK, json.dumps(CASES)], env=env,
                         capture_output=True, text=True, timeout=600,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr[-2000:]
    errors = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(errors) == len(CASES)
    assert all(e < 1e-5 for e in errors), errors


def test_gemv_rows_on_torch_is_rmsnorm_linear_swiglu_residual():
    """On the CPU (or above MAX_ROWS rows) `gemv_rows` is HF's RMSNorm (its scale folded
    into the weight), F.linear, SiLU * up and the residual add."""
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm

    from unimm.inference.gemv import MAX_ROWS, gemv_rows
    torch.manual_seed(0)
    x, r = torch.randn(MAX_ROWS + 1, 1, 32), torch.randn(MAX_ROWS + 1, 1, 8)
    w, b = torch.randn(16, 32), torch.randn(16)
    norm = Qwen2RMSNorm(32, eps=1e-5)
    torch.nn.init.normal_(norm.weight)
    torch.testing.assert_close(gemv_rows(x, w, b), torch.nn.functional.linear(x, w, b))
    gate, up = torch.nn.functional.linear(norm(x), w, b).chunk(2, -1)
    torch.testing.assert_close(
        gemv_rows(x, w * norm.weight, b, swiglu=True, rms_eps=1e-5, residual=r),
        r + torch.nn.functional.silu(gate) * up)


@pytest.mark.gpu
@pytest.mark.parametrize('swiglu', [False, True])
def test_gemv_rows_on_the_gpu_matches_float64_in_bf16(swiglu):
    """The compiled kernel through `torch.ops.unimm.gemv`, eager and inside torch.compile,
    within bf16 rounding of float64 at the 3B decode shapes (q/k/v + bias; gate/up with
    the RMS, SiLU * up and a residual)."""
    from unimm.inference.gemv import gemv_rows
    torch.manual_seed(0)
    k, n = 2048, 11008 if swiglu else 2560
    x = torch.randn(2, 1, k, device='cuda', dtype=torch.bfloat16)
    w = torch.randn(2 * n if swiglu else n, k, device='cuda', dtype=torch.bfloat16) / k ** 0.5
    b = None if swiglu else torch.randn(n, device='cuda', dtype=torch.bfloat16)
    r = torch.randn(2, 1, n, device='cuda', dtype=torch.bfloat16) if swiglu else None
    eps = 1e-6 if swiglu else None
    xd = x.double()
    if swiglu:
        xd = xd / (xd.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    ref = torch.nn.functional.linear(xd, w.double(), None if b is None else b.double())
    if swiglu:
        ref = torch.nn.functional.silu(ref[..., :n]) * ref[..., n:] + r.double()
    for fn in (gemv_rows, torch.compile(gemv_rows, fullgraph=True)):
        y = fn(x, w, b, swiglu, eps, r)
        assert y.shape == ref.shape and y.dtype == torch.bfloat16
        assert ((y.double() - ref).norm() / ref.norm()).item() < 1e-2
