import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, 'tools')]
os.environ.setdefault('DS_ACCELERATOR', 'cpu')


def run_tool(tool, *args):
    """Run tools/<tool>.py in a fresh process (as a user would); fail with its output."""
    env = dict(os.environ, PYTHONPATH=ROOT, DS_ACCELERATOR='cpu')
    proc = subprocess.run([sys.executable, os.path.join('tools', tool + '.py'), *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


@pytest.fixture(scope='session')
def demo_teacher(tmp_path_factory):
    """The stage-0 demo teacher, trained briefly: (work_dir, export folder)."""
    work = tmp_path_factory.mktemp('teacher')
    run_tool('train', 'registry_configs/demo/shapes_siglip.py', '--work-dir', work,
             '--cfg-options', 'train_cfg.max_steps=150', 'train_cfg.log_interval=50',
             'log_cfg.tensorboard=False')
    return work, os.path.join(work, 'export')
