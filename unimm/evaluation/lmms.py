"""``tools/test.py CONFIG EXPORT --task lmms``: run lmms-eval tasks on an exported model
in-process (the ``unimm`` lmms-eval model), offline; unimm's own shapes-VQA tasks are
on the include path. Needs the ``lmms`` extra (``pip install -e '.[lmms]'``)."""
import os

from unimm.registry import METRICS

TASKS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lmms_tasks')


@METRICS.register_module()
class LmmsEvalEvaluator:
    """``tasks``: lmms-eval task names (``mme``, ``pope``, ``gqa`` need their datasets in
    the HF cache; ``shapes_vqa`` / ``shapes_vqa_yesno`` ship here). ``limit``: documents
    per task (None: all)."""

    def __init__(self, tasks=('shapes_vqa',), include_path=None, limit=None, batch_size=16):
        self.tasks, self.limit, self.batch_size = list(tasks), limit, batch_size
        self.include_path = include_path or TASKS_DIR

    def __call__(self, model, work_dir=None):
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
        try:
            from lmms_eval.evaluator import simple_evaluate
            from lmms_eval.tasks import TaskManager
        except ImportError as err:
            raise ImportError("lmms-eval is not installed: pip install -e '.[lmms]'") from err
        from unimm.evaluation.lmms_model import Unimm
        results = simple_evaluate(
            model=Unimm(model=model, batch_size=self.batch_size), tasks=self.tasks,
            limit=self.limit, task_manager=TaskManager(include_path=self.include_path),
            log_samples=False, verbosity='WARNING')
        return {task: {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
                for task, metrics in results['results'].items()}
