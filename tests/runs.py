"""Helpers of the test modules that train through tools/train.py (one process or two gloo
ranks under torchrun) and feed them faults: the toy configs, launching and reading a run's
log, and unreadable images."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = os.path.join(ROOT, 'tests', 'configs', 'toy_regression.py')
TOY_GAN = os.path.join(ROOT, 'tests', 'configs', 'toy_gan.py')
LAUNCHER_VARS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT',
                 'LOCAL_WORLD_SIZE', 'GROUP_RANK', 'ROLE_RANK')


def launch(config, work_dir, *extra, env=None):
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), config,
           '--work-dir', str(work_dir), *extra]
    full_env = dict(os.environ, PYTHONPATH=ROOT, DS_ACCELERATOR='cpu', **(env or {}))
    for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        full_env.pop(k, None)
    return subprocess.Popen(cmd, env=full_env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run(config, work_dir, *extra, env=None, check=True):
    proc = launch(config, work_dir, *extra, env=env)
    out, _ = proc.communicate(timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f'training failed ({proc.returncode}):\n{out[-4000:]}')
    return proc.returncode, out


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    work = tmp_path_factory.mktemp('reference')
    run(TOY, work)
    return work


def write_config(path, base, **extra):
    """A test twin of ``base``: the dropout-free toy, global batch 16, 8 steps."""
    lines = [f'_base_ = [{base!r}]',
             "custom_imports = dict(imports=['tests.toy', 'tests.test_distributed'])",
             "model = dict(_delete_=True, type='DistToyRegressor', dim=8, hidden=16)",
             'train_cfg = dict(max_steps=8, global_batch_size=16, log_interval=1)',
             'checkpoint = dict(interval=4, max_keep=4)',
             'log_cfg = dict(tensorboard=False)']
    lines += [f'{k} = {v!r}' for k, v in extra.items()]
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def trace(work_dir, key='loss'):
    """step -> logged value (the last record of a step wins)."""
    out = {}
    with open(os.path.join(work_dir, 'log.jsonl')) as f:
        for line in f:
            rec = json.loads(line)
            if key in rec:
                out[rec['step']] = rec[key]
    return out


def start_two_ranks(jobs, tmp_path):
    """Launch the jobs (`unimm.apis.train.train`'s keyword arguments, a checkpoint to wait
    for or None, and optionally environment variables for that job) on two gloo ranks, all
    in one torchrun launch; returns the running process."""
    from unimm.engine.runner import free_port
    spec = tmp_path / 'jobs.json'
    spec.write_text(json.dumps([({k: str(v) for k, v in job.items()}, wait and str(wait),
                                 env[0] if env else {}) for job, wait, *env in jobs]))
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env.update(PYTHONPATH=ROOT, DS_ACCELERATOR='cpu', OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_port', str(free_port()), os.path.join(ROOT, 'tests', 'test_distributed.py'),
           str(spec)]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def gradient(width, height):
    """A horizontal red ramp over a vertical green ramp: flips and crops change it."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, np.full_like(x, 60)], -1).astype(np.uint8))


def solid(colour, size=(24, 20)):
    return Image.new('RGB', size, colour)


def jpeg_bytes(img):
    buffer = io.BytesIO()
    img.save(buffer, 'JPEG', quality=95)
    return buffer.getvalue()


def write_corrupt(folder):
    """A truncated JPEG and a text file named .png; returns their paths."""
    truncated, fake = folder / 'truncated.jpg', folder / 'not_an_image.png'
    truncated.write_bytes(jpeg_bytes(gradient(40, 40))[:300])
    fake.write_text('this is not a png')
    return [str(truncated), str(fake)]
