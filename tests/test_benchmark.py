"""tools/benchmark.py's helpers that run without a GPU: the per-step profile that
``generate --profile`` keeps."""
import torch

from unimm.apis.benchmark import kernel_profile


def test_kernel_profile_counts_each_op_per_step_and_sums_the_total():
    steps, a = 4, torch.randn(256, 256)

    def call():  # per step: three products and one softmax
        for _ in range(steps):
            x = a @ a
            x = x @ a
            x = x @ a
            x.softmax(-1)

    result = kernel_profile(call, steps, top=50)
    by_name = {r['name']: r for r in result['top']}
    assert by_name['aten::mm']['calls_per_step'] == 3
    assert by_name['aten::_softmax']['calls_per_step'] == 1
    times = [r['us_per_step'] for r in result['top']]
    assert times == sorted(times, reverse=True) and min(times) > 0
    assert abs(result['us_per_step'] - sum(times)) <= 0.1 * len(times)
    assert len(kernel_profile(call, steps, top=1)['top']) == 1
