"""Training a recipe: the function behind tools/train.py."""
import os

from unimm.engine.config import load_config


def train(config, work_dir=None, resume=None, cfg_options=None):
    """Train ``config`` (a recipe file) into ``work_dir`` (default: the config's
    ``work_dir``, else ``work_dirs/<config name>``); ``resume``: 'auto' or a checkpoint folder;
    ``cfg_options``: ``{'dotted.key': value}`` overrides. Returns the finished Runner."""
    cfg = load_config(config, cfg_options)
    work_dir = work_dir or cfg.get('work_dir') or os.path.join(
        'work_dirs', os.path.splitext(os.path.basename(config))[0])
    from unimm.engine.runner import Runner  # imports DeepSpeed
    runner = Runner(cfg, work_dir, resume=resume)
    if runner.rank == 0:
        os.makedirs(runner.work_dir, exist_ok=True)
        cfg.dump(os.path.join(runner.work_dir, 'config.py'))
    runner.train()
    return runner
