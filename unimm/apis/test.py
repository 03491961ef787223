"""Evaluating an exported model on one task of its recipe's ``test_cfg``: the function
behind tools/test.py."""
import json
import os

import torch

from unimm.engine.config import load_config
from unimm.registry import METRICS, MODELS
from unimm.utils.build import ConfigError


def evaluate(config, checkpoint, task, work_dir=None, cfg_options=None):
    """Results of ``test_cfg[task]`` of ``config`` on the export folder ``checkpoint``
    (``<work_dir>/export``), also written to ``<work_dir>/test_<task>.json`` (default
    ``work_dir``: the checkpoint folder)."""
    cfg = load_config(config, cfg_options)
    tasks = dict(cfg.get('test_cfg') or {})
    if task not in tasks:
        raise ConfigError(f'--task {task!r}: the config\'s test_cfg has {sorted(tasks)}')
    if not os.path.isdir(checkpoint):
        raise FileNotFoundError(f'{checkpoint} is not a folder: pass the exported weights '
                                'folder that tools/train.py writes to <work_dir>/export')
    model = MODELS.get(cfg.model.type).from_pretrained(checkpoint)
    model.to('cuda' if torch.cuda.is_available() else 'cpu').eval()
    evaluator = METRICS.build(tasks[task], path=f'test_cfg.{task}')
    work_dir = work_dir or checkpoint
    os.makedirs(work_dir, exist_ok=True)
    results = evaluator(model, work_dir=work_dir)
    with open(os.path.join(work_dir, f'test_{task}.json'), 'w') as f:
        json.dump(results, f, indent=2)
    return results
