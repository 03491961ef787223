"""Print the markdown table of docs/unified.md from the runs' own files: held-out shapes
VQA (``test_vqa.json``), shapes GenEval (``test_shapes_geneval.json``), the held-out
per-task losses (``test_heldout_loss_{und,gen}.json``: answer-token and visual-token
cross-entropy) and the samples each task was trained on (the run's ``config.py``):

python tools/unified_table.py NAME=EXPORT ... [--random FOLDER_WITH_RANDOM_TOKEN_RESULT]"""
import argparse
import json
import os
import sys

from mmengine.config import Config

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.datasets.shapes import GENEVAL_TAGS  # noqa: E402


def task_samples(cfg):
    """Samples each task was trained on, {'und': n, 'gen': n}, from the run's config."""
    total = cfg.train_cfg.max_steps * cfg.train_dataloader.batch_size
    dataset = cfg.train_dataloader.dataset
    if dataset.type == 'MixedTaskDataset':
        und = round(total * dataset.understanding_ratio)
        return {'und': und, 'gen': total - und}
    return {'und' if cfg.model.type == 'UnderstandingMLLM' else 'gen': total}


def read(folder, name):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def fmt(value, digits=3):
    return '—' if value is None else f'{value:.{digits}f}'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('runs', nargs='+', help='NAME=EXPORT_FOLDER (<work_dir>/export)')
    p.add_argument('--random', help='folder with test_shapes_geneval_random.json (the floor)')
    args = p.parse_args(argv)
    runs = []
    for run in args.runs:
        name, export = run.split('=', 1)
        cfg = Config.fromfile(os.path.join(os.path.dirname(os.path.normpath(export)),
                                           'config.py'))
        runs.append((name, task_samples(cfg), {k: read(export, f'test_{k}.json') for k in (
            'vqa', 'heldout_loss_und', 'shapes_geneval', 'heldout_loss_gen')}))

    understanding = [(n, s, r) for n, s, r in runs if r['vqa']]
    if understanding:
        first = understanding[0][2]['vqa']
        types = sorted(first['accuracy_by_type'])
        print('| model | trained on (und / gen samples) | shapes-VQA accuracy | '
              + ' | '.join(types) + ' | held-out answer CE |')
        print('| --- ' * (4 + len(types)) + '|')
        for name, samples, r in understanding:
            print(f"| {name} | {samples.get('und', 0)} / {samples.get('gen', 0)} | "
                  f"{fmt(r['vqa']['accuracy'])} | "
                  + ' | '.join(fmt(r['vqa']['accuracy_by_type'].get(t)) for t in types)
                  + f" | {fmt(r['heldout_loss_und'].get('loss'))} |")
        print(f"\n{first['num_questions']} held-out questions; blind baseline (each type's most "
              f"frequent answer) {first['blind_baseline']:.3f}, chance {first['chance']:.3f}.\n")

    generation = [(n, s, r) for n, s, r in runs if r['shapes_geneval']]
    if generation:
        print('| model | trained on (und / gen samples) | shapes-GenEval overall | '
              + ' | '.join(GENEVAL_TAGS) + ' | held-out visual-token CE |')
        print('| --- ' * (4 + len(GENEVAL_TAGS)) + '|')
        for name, samples, r in generation:
            tasks = r['shapes_geneval']['tasks']
            print(f"| {name} | {samples.get('und', 0)} / {samples.get('gen', 0)} | "
                  f"{fmt(r['shapes_geneval']['overall'])} | "
                  + ' | '.join(fmt(tasks.get(t), 2) for t in GENEVAL_TAGS)
                  + f" | {fmt(r['heldout_loss_gen'].get('loss'))} |")
        if args.random:
            floor = read(args.random, 'test_shapes_geneval_random.json')
            print('| floor: uniform random tokens | — | ' + fmt(floor['overall']) + ' | '
                  + ' | '.join(fmt(floor['tasks'].get(t), 2) for t in GENEVAL_TAGS) + ' | — |')


if __name__ == '__main__':
    main()
