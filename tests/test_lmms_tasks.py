"""The lmms-eval task lists of the recipes: the paper-scale understanding recipes name the
paper's benchmarks, and every task any recipe names is one lmms-eval (with unimm's own
shapes tasks on the include path) registers, so `tools/test.py --task lmms` never fails
on a misspelt or renamed task."""
import functools
import os

import pytest

from tests.recipes import CONFIG_ROOT, CONFIGS
from unimm.engine.config import load_config

PAPER = ('registry_configs/llava_vicuna7b_sghc_finetune.py',
         'registry_configs/llava_vicuna7b_sghc_finetune_zero2.py',
         'registry_configs/llava_vicuna7b_siglip_finetune.py',
         'registry_configs/unified_vicuna7b_sghc.py')


@functools.lru_cache(maxsize=None)
def named_tasks():
    """{recipe: [task, ...]} for every recipe with an LmmsEvalEvaluator."""
    found = {}
    for config in CONFIGS:
        cfg = load_config(os.path.join(CONFIG_ROOT, config))
        for spec in (cfg.get('test_cfg') or {}).values():
            if isinstance(spec, dict) and spec.get('type') == 'LmmsEvalEvaluator':
                found.setdefault(config, []).extend(spec['tasks'])
    return found


def test_paper_recipes_evaluate_mmbench_and_mmmu():
    tasks = named_tasks()
    for path in PAPER:
        named = tasks[os.path.relpath(path, 'registry_configs')]
        assert {'mme', 'pope', 'gqa', 'seedbench', 'mmbench_en_dev_static',
                'mmmu_val'} <= set(named), (path, named)


@pytest.mark.slow  # lmms-eval indexes its few thousand task files (~40 s on 2 cores)
def test_every_named_task_is_registered_by_lmms_eval():
    pytest.importorskip('lmms_eval')
    from lmms_eval.tasks import TaskManager

    from unimm.evaluation.lmms import TASKS_DIR
    registered = set(TaskManager(verbosity='ERROR', include_path=TASKS_DIR).all_tasks)
    missing = {config: sorted(set(tasks) - registered)
               for config, tasks in named_tasks().items() if set(tasks) - registered}
    assert not missing, f'tasks lmms-eval does not register: {missing}'
    assert {'mmbench_en_dev_static', 'mmmu_val', 'shapes_vqa'} <= registered
