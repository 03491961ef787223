"""tools/shapes_reference.py: the GPU reference chain runs its recipes in dependency order,
records each stage, and skips a stage whose export exists (so a chain spread over several
sessions resumes where it stopped). Tiny step counts on the CPU."""
import json
import os
import subprocess
import sys

from tests.conftest import LAUNCHER_VARS, ROOT

import shapes_reference as chain  # tools/ is on sys.path (conftest)

TINY = ['train_cfg.max_steps=2', 'train_cfg.log_interval=1', 'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0', 'log_cfg.tensorboard=False']


def test_levels_put_every_recipe_after_the_one_it_starts_from():
    order = {name: i for i, level in enumerate(chain.levels()) for name in level}
    assert set(order) == set(chain.CHAIN)
    for name, parent in chain.CHAIN.items():
        assert parent is None or order[parent] < order[name]
        assert os.path.isfile(os.path.join(ROOT, chain.RECIPES, f'{name}.py'))


def test_chain_trains_in_order_records_stages_and_skips_finished_ones(tmp_path):
    os.symlink(os.path.join(ROOT, 'registry_configs'), tmp_path / 'registry_configs')
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env.update(DS_ACCELERATOR='cpu')
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'shapes_reference.py'), 'train',
           '--only', 'teacher_flat64', 'spc_flat64', '--cfg-options', *TINY]

    def run():
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        return proc.stdout

    out = run()
    assert out.index('teacher_flat64:') < out.index('spc_flat64:')
    stages = json.loads((tmp_path / chain.STATE / 'stages.json').read_text())
    assert set(stages) == {'teacher_flat64', 'spc_flat64'}
    assert all(s['wall_s'] > 0 and s['device'] == 'CPU' for s in stages.values())
    weights = tmp_path / 'work_dirs' / 'spc_flat64' / 'export' / 'model.safetensors'
    mtime = weights.stat().st_mtime
    assert run() == ''  # both exported: nothing retrained
    assert weights.stat().st_mtime == mtime
    assert json.loads((tmp_path / chain.STATE / 'stages.json').read_text()) == stages
