"""The shapes-world reference chain: trains the GPU recipes of registry_configs/shapes/ in
dependency order (several side by side: the models are small), then scores every tokenizer
and MLLM on held-out scenes and writes docs/shapes_reference.md.

    python tools/shapes_reference.py train [--only NAME ...] [--parallel 4]   # on a GPU
    python tools/shapes_reference.py evaluate     # the MLLMs' held-out tasks, best on a GPU
    python tools/shapes_reference.py report       # any machine

Run it from the repository root, like tools/train.py. The chain's steps (``STEPS``) are
the tokenizer recipes, the preparation of the MLLM stages (the reference LLM made by
tools/make_tiny_lm.py, the caption-image pairs pre-tokenised by tools/pretokenize.py with
sghc_flat64, both written to a temporary folder renamed when complete) and the MLLM
recipes. A recipe trains with ``--resume auto`` into work_dirs/<recipe>/; a step is skipped
once its output exists, so the chain can be spread over several sessions. ``train``
records each step's wall time and device in work_dirs/shapes_reference/stages.json;
``evaluate`` runs tools/test.py on the MLLM exports and keeps the results in
work_dirs/shapes_reference/<recipe>/ (``report`` runs the missing ones and reuses the rest,
unless the export is newer); ``report`` reads the tokenizer exports (LPIPS and rFID need their local weights, see
docs/getting_started.md)."""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from collections import namedtuple
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from functools import partial

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RECIPES = os.path.join('registry_configs', 'shapes')
STATE = os.path.join('work_dirs', 'shapes_reference')
# the reference LLM's size (tools/make_tiny_lm.py arguments)
LM_SIZE = ['--hidden-size', '256', '--layers', '6', '--heads', '8']
WORLDS = {'flat64': dict(texture=False, resolution=64),
          'textured128': dict(texture=True, resolution=128)}
TARGETS = {'flat64': 'SGHC PSNR >= 30 dB, attribute accuracy >= 0.95, shapes-GenEval '
                     'reconstruction ceiling >= 0.90; >= 6 of 12 sub-codes in use per used '
                     'semantic code',
           'textured128': 'SGHC >= 3 dB PSNR over the SPC-only decoder at equal budget and '
                          'clearly lower LPIPS, semantic ids bit-identical'}
MLLM_TARGETS = ('held-out shapes-VQA exact match >= 0.90 on SGHC features; shapes-GenEval '
                'overall >= 0.70; the unified model within 0.03 of the single-task models '
                'on both tasks')
UNDERSTANDING = ('llava_sghc_flat64', 'llava_teacher_flat64', 'unified_flat64')
GENERATION = ('t2i_flat64', 'unified_flat64')
GENEVAL_TASKS = ('shapes_geneval', 'shapes_geneval_random', 'shapes_geneval_reconstruction')


def export_of(name):
    return os.path.join('work_dirs', name, 'export')


def recipe_path(name):
    return os.path.join(RECIPES, f'{name}.py')


def tool_env():
    """The environment of a tool subprocess: the repository on PYTHONPATH."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, (ROOT, os.environ.get('PYTHONPATH')))))


def run_tool(log_name, script, args):
    """tools/<script> with ``args``, its output in work_dirs/<log_name>.log; fails loudly."""
    log = os.path.join('work_dirs', f'{log_name}.log')
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, 'w') as f:
        rc = subprocess.call([sys.executable, os.path.join(ROOT, 'tools', script), *args],
                             env=tool_env(), stdout=f, stderr=subprocess.STDOUT)
    if rc:
        raise RuntimeError(f'{script} {log_name} failed (exit {rc}); its output is in {log}')


def write_atomically(out, write):
    """``write(folder)`` into ``out``.tmp (a leftover from an interrupted run is removed
    first), renamed to ``out`` once complete."""
    tmp = out + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    os.rename(tmp, out)


def train_recipe(name, options):
    """tools/train.py on one recipe (resumed if it has checkpoints)."""
    run_tool(f'{name}.train', 'train.py', [recipe_path(name), '--resume', 'auto',
                                           *(['--cfg-options', *options] if options else [])])


def make_lm(name, options):
    """tools/make_tiny_lm.py: a LLaMA of ``LM_SIZE`` into work_dirs/<name>, its tokenizer
    also taught the vicuna_v1 system prompt."""
    from unimm.models.mllm.conversation import VICUNA_SYSTEM
    write_atomically(os.path.join('work_dirs', name), lambda out: run_tool(
        name, 'make_tiny_lm.py', ['--arch', 'llama', '--out', out, *LM_SIZE,
                                  '--extra-text', VICUNA_SYSTEM]))


def pretokenize(name, recipe, options):
    """tools/pretokenize.py on ``recipe``'s _source_dataset with its image tokenizer into
    work_dirs/<name>; the cfg options apply to the recipe read."""
    write_atomically(os.path.join('work_dirs', name), lambda out: run_tool(
        name, 'pretokenize.py', [recipe_path(recipe), '--source', '_source_dataset',
                                 '--out', out, '--batch-size', '256', '--num-workers', '4',
                                 '--shard-size', '2500',
                                 *(['--cfg-options', *options] if options else [])]))


# needs: the steps it starts from; run(cfg options) does it; it is done once output exists
Step = namedtuple('Step', 'needs run output')


def recipe(name, *needs):
    """The step that trains registry_configs/shapes/<name>.py; done once it is exported."""
    return Step(needs, partial(train_recipe, name), os.path.join(export_of(name), 'config.json'))


def lm(name):
    """The step that makes the reference LLM work_dirs/<name>."""
    return Step((), partial(make_lm, name), os.path.join('work_dirs', name, 'config.json'))


STEPS = {
    'teacher_flat64': recipe('teacher_flat64'),
    'teacher_textured128': recipe('teacher_textured128'),
    'spc_flat64': recipe('spc_flat64', 'teacher_flat64'),
    'spc_textured128': recipe('spc_textured128', 'teacher_textured128'),
    'sghc_flat64': recipe('sghc_flat64', 'spc_flat64'),
    'spc_only_decoder_flat64': recipe('spc_only_decoder_flat64', 'spc_flat64'),
    'sghc_textured128': recipe('sghc_textured128', 'spc_textured128'),
    'spc_only_decoder_textured128': recipe('spc_only_decoder_textured128', 'spc_textured128'),
    'reference_llama': lm('reference_llama'),
    't2i_flat64_tokens': Step(('sghc_flat64',),
                              partial(pretokenize, 't2i_flat64_tokens', 't2i_flat64'),
                              os.path.join('work_dirs', 't2i_flat64_tokens')),
    'llava_sghc_flat64': recipe('llava_sghc_flat64', 'sghc_flat64', 'reference_llama'),
    'llava_teacher_flat64': recipe('llava_teacher_flat64', 'teacher_flat64', 'reference_llama'),
    't2i_flat64': recipe('t2i_flat64', 'sghc_flat64', 'reference_llama', 't2i_flat64_tokens'),
    'unified_flat64': recipe('unified_flat64', 'sghc_flat64', 'reference_llama',
                             't2i_flat64_tokens'),
}


def done(name):
    """Whether step ``name``'s output exists."""
    return os.path.exists(STEPS[name].output)


def device_name():
    import torch
    return torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'


def run_step(name, options=()):
    """One step of the chain; its wall time in s."""
    start = time.time()
    STEPS[name].run(options)
    return time.time() - start


def train(only, parallel, options):
    """Runs every selected unfinished step, up to ``parallel`` side by side, each as soon
    as none of its prerequisites is still to run; records each one in stages.json. A failed
    step stops the chain once the steps running beside it have finished."""
    state_file = os.path.join(STATE, 'stages.json')
    os.makedirs(os.path.dirname(state_file), exist_ok=True)
    state = json.load(open(state_file)) if os.path.exists(state_file) else {}
    todo = [n for n in STEPS if (not only or n in only) and not done(n)]
    running, concurrent, failed = {}, {}, []
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        while running or (todo and not failed):
            for name in [n for n in todo if not set(STEPS[n].needs) & {*todo, *running.values()}]:
                if failed or len(running) == parallel:
                    break
                todo.remove(name)
                running[pool.submit(run_step, name, options)] = name
                concurrent[name] = len(running)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                if future.exception():
                    failed.append(future.exception())
                    continue
                state[name] = {'wall_s': round(future.result(), 1), 'device': device_name(),
                               'date': datetime.date.today().isoformat(),
                               'concurrent': concurrent[name]}
                print(f'{name}: {future.result():.0f} s', flush=True)
            with open(state_file, 'w') as f:
                json.dump(state, f, indent=1)
    if failed:
        raise failed[0]


def semantic_ids_identical(tokenizer, spc, images):
    """Share of patches whose semantic id equals the stage-1 export's id."""
    import torch
    with torch.no_grad():
        sem = tokenizer.semantic_ids(tokenizer.encode(images))
        return (sem == spc.encode(images)).float().mean().item()


def edge_error(tokenizer, images):
    """Where the reconstruction error lies: the share of squared error on colour-edge pixels
    (a colour change within their 3x3 neighbourhood), those pixels' share of the image, and
    the PSNR of the pixels off the edges."""
    import torch
    import torch.nn.functional as F
    with torch.no_grad():
        recon = tokenizer.reconstruct(images).clamp(-1, 1)
    x = (images + 1) / 2
    squared = (((recon + 1) / 2 - x) ** 2).mean(1)
    spread = F.max_pool2d(x, 3, 1, 1) + F.max_pool2d(-x, 3, 1, 1)
    edge = spread.amax(1) > 0.02
    return {'edge_pixels': edge.float().mean().item(),
            'edge_error_share': (squared[edge].sum() / squared.sum()).item(),
            'psnr_off_edges': (-10 * torch.log10(squared[~edge].mean())).item()}


def geneval_ceiling(tokenizer, world, n_per_tag=20, n_samples=4):
    """Shapes-GenEval of reconstructions: correct scenes for each prompt, rendered and passed
    through the tokenizer (the best a generator emitting its ids can score)."""
    import numpy as np
    import torch
    from unimm.datasets.shapes import render, sample_geneval_prompts, scene_from_prompt
    from unimm.datasets.transforms import pil_to_tensor
    from unimm.evaluation.geneval import summarize
    from unimm.evaluation.shapes_geneval import score_images
    rng, records = np.random.default_rng(0), []
    for spec in sample_geneval_prompts(0, n_per_tag):
        images = torch.stack([pil_to_tensor(render(scene_from_prompt(spec, rng),
                                                   world['resolution']))
                              for _ in range(n_samples)])
        records += score_images([spec] * n_samples, tokenizer.reconstruct(images).cpu())
    return summarize(records)['overall']


def score_tokenizer(name, docs_images, rfid):
    """Held-out reconstruction metrics of one tokenizer export, its grid copied to docs."""
    import shutil
    import torch
    from unimm.engine.config import load_config
    from unimm.models.base import PretrainedMixin
    from unimm.registry import METRICS
    cfg = load_config(recipe_path(name))
    model = PretrainedMixin.from_pretrained(export_of(name)).eval()
    work = os.path.join(STATE, name)
    os.makedirs(work, exist_ok=True)
    result = METRICS.build(dict(cfg.test_cfg.recon, fid=rfid))(model, work_dir=work)
    shutil.copy(result.pop('grid'), os.path.join(docs_images, f'shapes_reference_{name}.png'))
    world = WORLDS[name.rsplit('_', 1)[1]]
    spc = PretrainedMixin.from_pretrained(export_of(STEPS[name].needs[0])).eval()
    from unimm.datasets.shapes_datasets import ShapesCaptionDataset
    held_out = ShapesCaptionDataset(seed=0, start=100000, length=64, **world)
    images = torch.stack([held_out[i]['image'] for i in range(len(held_out))])
    result['semantic_ids_identical'] = semantic_ids_identical(model, spc, images)
    result.update(edge_error(model, images))
    if not world['texture']:
        result['geneval_ceiling'] = geneval_ceiling(model, world)
    return result


ROW_KEYS = ('psnr', 'ssim', 'lpips', 'rfid', 'attribute_accuracy', 'pattern_accuracy',
            'usage_semantic', 'usage_subcodes', 'semantic_ids_identical', 'geneval_ceiling',
            'edge_pixels', 'edge_error_share', 'psnr_off_edges')


def fmt(v):
    return '–' if v is None else (f'{v:.3f}' if abs(v) < 10 else f'{v:.2f}')


def evaluate(name, task):
    """tools/test.py on one recipe's export; its results, kept in
    work_dirs/shapes_reference/<name>/test_<task>.json and reused while the export is not
    newer (or absent: results brought back from the GPU without the export)."""
    work = os.path.join(STATE, name)
    result = os.path.join(work, f'test_{task}.json')
    export = STEPS[name].output
    if not os.path.exists(result) or (
            os.path.exists(export) and os.path.getmtime(export) > os.path.getmtime(result)):
        run_tool(os.path.join('shapes_reference', f'{name}.{task}'), 'test.py',
                 [recipe_path(name), export_of(name), '--task', task, '--work-dir', work])
    with open(result) as f:
        return json.load(f)


def evaluated(name, task):
    """Whether ``name`` has an export or kept results for ``task`` to report."""
    return done(name) or os.path.exists(os.path.join(STATE, name, f'test_{task}.json'))


def gap_line(task, scores, single):
    """The unified model's score minus its single-task model's, where both were scored."""
    if 'unified_flat64' not in scores or single not in scores:
        return []
    return [f"- {task}: unified_flat64 {scores['unified_flat64']:.3f} against {single} "
            f"{scores[single]:.3f} ({scores['unified_flat64'] - scores[single]:+.3f})"]


def mllm_section(parallel=4):
    """The flat world's MLLM results: held-out VQA (with chance and the blind baseline)
    and shapes-GenEval (with the random-token floor and the reconstruction ceiling); up to
    ``parallel`` evaluations side by side."""
    from unimm.evaluation.vqa import markdown_table
    runs = [(n, 'vqa') for n in UNDERSTANDING if evaluated(n, 'vqa')]
    runs += [(n, t) for n in GENERATION if all(evaluated(n, t) for t in GENEVAL_TASKS)
             for t in GENEVAL_TASKS]
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        results = dict(zip(runs, pool.map(evaluate, *zip(*runs)))) if runs else {}
    vqa = {n: r for (n, t), r in results.items() if t == 'vqa'}
    geneval = {n: [results[n, t]['overall'] for t in GENEVAL_TASKS]
               for n in GENERATION if (n, GENEVAL_TASKS[0]) in results}
    if not vqa and not geneval:
        return []
    lines = ['', '## flat64: understanding, generation, unified', '',
             f'Targets: {MLLM_TARGETS}.']
    if vqa:
        lines += ['', *markdown_table(list(vqa.items()))]
    if geneval:
        lines += ['', '| generator | shapes-GenEval overall | random-token floor | '
                  'reconstruction ceiling |', '| --- | --- | --- | --- |']
        lines += [f'| {n} | ' + ' | '.join(map(fmt, v)) + ' |' for n, v in geneval.items()]
    gaps = gap_line('VQA', {n: r['accuracy'] for n, r in vqa.items()}, 'llava_sghc_flat64') \
        + gap_line('shapes-GenEval', {n: v[0] for n, v in geneval.items()}, 't2i_flat64')
    return lines + (['', 'Unified against single-task (target: within 0.03):', *gaps]
                    if gaps else [])


def report(docs, rfid):
    images = os.path.join(docs, 'images')
    os.makedirs(images, exist_ok=True)
    stages = json.load(open(os.path.join(STATE, 'stages.json')))
    tokenizers = [n for n in STEPS if n.startswith(('sghc', 'spc_only'))
                  and os.path.isdir(export_of(n))]
    scores = {n: score_tokenizer(n, images, rfid) for n in tokenizers}
    with open(os.path.join(STATE, 'scores.json'), 'w') as f:
        json.dump(scores, f, indent=1)
    lines = ['# Shapes-world reference results', '',
             'Generated by `python tools/shapes_reference.py train` (on the GPU) and `report` '
             f'({datetime.date.today().isoformat()}); do not edit by hand. Held-out scenes '
             '100000.. of each world, scored with the project\'s own scorers; the recipes are '
             'in `registry_configs/shapes/`.', '',
             '## Training time per stage', '', '| recipe | device | date | wall time | '
             'stages run side by side |', '| --- | --- | --- | --- | --- |']
    lines += [f"| {n} | {s['device']} | {s['date']} | {s['wall_s'] / 60:.1f} min | "
              f"{s['concurrent']} |" for n, s in stages.items()]
    for world, target in TARGETS.items():
        lines += ['', f'## {world}', '', f'Targets: {target}.', '',
                  '| tokenizer | ' + ' | '.join(ROW_KEYS) + ' |',
                  '| --- |' + ' --- |' * len(ROW_KEYS)]
        for n in (t for t in tokenizers if t.endswith(world)):
            lines.append(f'| {n} | ' + ' | '.join(fmt(scores[n].get(k)) for k in ROW_KEYS)
                         + ' |')
        lines += [f'\n![{n}](images/shapes_reference_{n}.png)' for n in tokenizers
                  if n.endswith(world)]
    lines += mllm_section()
    with open(os.path.join(docs, 'shapes_reference.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('command', choices=('train', 'evaluate', 'report'))
    p.add_argument('--only', nargs='+', choices=sorted(STEPS), help='run these steps only')
    p.add_argument('--parallel', type=int, default=4, help='steps run side by side')
    p.add_argument('--docs', default='docs')
    p.add_argument('--rfid', action='store_true', help='also rFID (slow on a CPU)')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='k=v overrides for every recipe the chain trains or pre-tokenises '
                        'with, e.g. train_cfg.max_steps=10 (smoke runs)')
    args = p.parse_args(argv)
    if args.command == 'train':
        train(args.only, args.parallel, args.cfg_options)
    elif args.command == 'evaluate':
        print('\n'.join(mllm_section(args.parallel)))
    else:
        report(args.docs, args.rfid)


if __name__ == '__main__':
    main()
