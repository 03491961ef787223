"""Markdown tables of the runs' own result files (behind tools/vqa_table.py and
tools/unified_table.py). A run is (name, export folder); each function returns the
table's lines."""
import json
import os

from mmengine.config import Config

from unimm.datasets.shapes import GENEVAL_TAGS
from unimm.evaluation.vqa import markdown_table


def read(folder, name):
    """The JSON file ``name`` in ``folder``, {} where it is missing."""
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def vqa_table(runs):
    """Held-out VQA results (``test_vqa.json``, written by ``--task vqa``) of each run."""
    rows = []
    for name, folder in runs:
        with open(os.path.join(folder, 'test_vqa.json')) as f:
            rows.append((name, json.load(f)))
    return markdown_table(rows)


def task_samples(cfg):
    """Samples each task was trained on, {'und': n, 'gen': n}, from the run's config."""
    total = cfg.train_cfg.max_steps * cfg.train_dataloader.batch_size
    dataset = cfg.train_dataloader.dataset
    if dataset.type == 'MixedTaskDataset':
        und = round(total * dataset.understanding_ratio)
        return {'und': und, 'gen': total - und}
    return {'und' if cfg.model.type == 'UnderstandingMLLM' else 'gen': total}


def fmt(value, digits=3):
    return '—' if value is None else f'{value:.{digits}f}'


def unified_table(runs, random=None):
    """The tables of docs/unified.md: held-out shapes VQA (``test_vqa.json``), shapes
    GenEval (``test_shapes_geneval.json``), the held-out per-task losses
    (``test_heldout_loss_{und,gen}.json``) and the samples each task was trained on (the
    run's ``config.py``, beside its export). ``random``: a folder with
    ``test_shapes_geneval_random.json``, the uniform-random-token floor."""
    rows = []
    for name, export in runs:
        cfg = Config.fromfile(os.path.join(os.path.dirname(os.path.normpath(export)),
                                           'config.py'))
        rows.append((name, task_samples(cfg), {k: read(export, f'test_{k}.json') for k in (
            'vqa', 'heldout_loss_und', 'shapes_geneval', 'heldout_loss_gen')}))
    lines = []
    understanding = [(n, s, r) for n, s, r in rows if r['vqa']]
    if understanding:
        first = understanding[0][2]['vqa']
        types = sorted(first['accuracy_by_type'])
        lines += ['| model | trained on (und / gen samples) | shapes-VQA accuracy | '
                  + ' | '.join(types) + ' | held-out answer CE |',
                  '| --- ' * (4 + len(types)) + '|']
        for name, samples, r in understanding:
            lines.append(f"| {name} | {samples.get('und', 0)} / {samples.get('gen', 0)} | "
                         f"{fmt(r['vqa']['accuracy'])} | "
                         + ' | '.join(fmt(r['vqa']['accuracy_by_type'].get(t)) for t in types)
                         + f" | {fmt(r['heldout_loss_und'].get('loss'))} |")
        lines += ['', f"{first['num_questions']} held-out questions; blind baseline (each "
                  f"type's most frequent answer) {first['blind_baseline']:.3f}, chance "
                  f"{first['chance']:.3f}.", '']
    generation = [(n, s, r) for n, s, r in rows if r['shapes_geneval']]
    if generation:
        lines += ['| model | trained on (und / gen samples) | shapes-GenEval overall | '
                  + ' | '.join(GENEVAL_TAGS) + ' | held-out visual-token CE |',
                  '| --- ' * (4 + len(GENEVAL_TAGS)) + '|']
        for name, samples, r in generation:
            tasks = r['shapes_geneval']['tasks']
            lines.append(f"| {name} | {samples.get('und', 0)} / {samples.get('gen', 0)} | "
                         f"{fmt(r['shapes_geneval']['overall'])} | "
                         + ' | '.join(fmt(tasks.get(t), 2) for t in GENEVAL_TAGS)
                         + f" | {fmt(r['heldout_loss_gen'].get('loss'))} |")
        if random:
            floor = read(random, 'test_shapes_geneval_random.json')
            lines.append('| floor: uniform random tokens | — | ' + fmt(floor['overall'])
                         + ' | ' + ' | '.join(fmt(floor['tasks'].get(t), 2)
                                              for t in GENEVAL_TAGS) + ' | — |')
    return lines
