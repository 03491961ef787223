"""Peak host memory of the final export, per rank (behind tools/export_memory.py): the
ranks run on the CPU (torchrun, gloo), build the runner on an MLP of ``depth``
[width x width] linear layers (the first one frozen) and call its export. Each rank reports
how far its resident memory rose above what it held before the export (Linux: the peak
resident size, VmHWM, reset through /proc/self/clear_refs just before).

``python -m unimm.apis.export_memory`` is one rank, started by ``export_memory``."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import torch
from torch import nn

from unimm.models.base import PretrainedMixin
from unimm.registry import MODELS

MB = 2**20


@MODELS.register_module(force=True)
class ExportProbeMLP(PretrainedMixin, nn.Module):
    """``depth`` [width x width] linear layers, the first frozen: the export's subject."""

    def __init__(self, width=2048, depth=12):
        super().__init__()
        self.layers = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])
        self.layers[0].requires_grad_(False)

    def forward(self, batch):
        return {'loss': self.layers(batch['x']).pow(2).mean()}


class _Inputs(torch.utils.data.Dataset):
    def __init__(self, width):
        self.width = width

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return {'x': torch.ones(self.width)}


def _resident_kib():
    """(current, peak) resident set size of this process in KiB."""
    with open('/proc/self/status') as f:
        status = f.read()
    return tuple(int(re.search(rf'{key}:\s+(\d+)', status).group(1)) for key in ('VmRSS', 'VmHWM'))


def measure(work_dir, width=2048, depth=12, zero_stage=3):
    """Collective: build a runner on ExportProbeMLP and export it into ``work_dir``; returns
    on rank 0 {model_mb, largest_layer_mb, ranks: [{rank, rise_mb, peak_mb}]} (None elsewhere)."""
    from mmengine.config import Config
    from unimm.engine.runner import Runner
    cfg = Config(dict(
        model=dict(type='ExportProbeMLP', width=width, depth=depth),
        train_dataloader=dict(batch_size=1, num_workers=0, dataset=dict(type='unused')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-4)),
        train_cfg=dict(max_steps=1), deepspeed=dict(zero_stage=zero_stage, precision='fp32')))
    runner = Runner(cfg, work_dir, dataset=_Inputs(width))
    torch.distributed.barrier()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # VmHWM := VmRSS
    before, _ = _resident_kib()
    runner.export()
    _, peak = _resident_kib()
    rows = [None] * runner.world_size
    torch.distributed.all_gather_object(rows, {'rank': runner.rank,
                                               'rise_mb': round((peak - before) / 1024, 1),
                                               'peak_mb': round(peak / 1024, 1)})
    if runner.rank != 0:
        return None
    layer = (width * width + width) * 4 / MB
    return {'model_mb': round(layer * depth, 1), 'largest_layer_mb': round(layer, 1),
            'params': (width * width + width) * depth, 'zero_stage': zero_stage,
            'world_size': runner.world_size, 'ranks': rows}


def export_memory(ranks=2, width=2048, depth=12, zero_stage=3):
    """Launch ``ranks`` CPU ranks that each run ``measure``; print and return rank 0's
    result."""
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, DS_ACCELERATOR='cpu', OMP_NUM_THREADS='1')
        from unimm.engine.runner import free_port
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(ranks),
               '--master_port', str(free_port()), '-m', __name__, work, '--width', str(width),
               '--depth', str(depth), '--zero-stage', str(zero_stage)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f'export_memory failed ({proc.returncode}):\n'
                           f'{(proc.stdout + proc.stderr)[-4000:]}')
    out = json.loads(lines[-1][len('RESULT '):])
    print(f"{out['params'] / 1e6:.1f} M parameters ({out['model_mb']} MB fp32, largest layer "
          f"{out['largest_layer_mb']} MB), ZeRO-{out['zero_stage']}, {out['world_size']} ranks")
    for row in out['ranks']:
        print(f"  rank {row['rank']}: resident memory rose {row['rise_mb']} MB during the export "
              f"(peak {row['peak_mb']} MB)")
    return out


if __name__ == '__main__':  # one rank of export_memory's torchrun
    p = argparse.ArgumentParser()
    p.add_argument('work_dir')
    p.add_argument('--width', type=int)
    p.add_argument('--depth', type=int)
    p.add_argument('--zero-stage', type=int)
    args = p.parse_args()
    result = measure(args.work_dir, args.width, args.depth, args.zero_stage)
    if result is not None:
        print('RESULT ' + json.dumps(result), flush=True)
