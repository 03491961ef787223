"""The shapes-world reference chain: trains the GPU recipes of registry_configs/shapes/ in
dependency order (the stages of one level side by side: the models are small), then scores
every tokenizer on held-out scenes and writes docs/shapes_reference.md with image grids.

    python tools/shapes_reference.py train [--only NAME ...] [--parallel 4]   # on a GPU
    python tools/shapes_reference.py report                                   # any machine

Run it from the repository root, like tools/train.py. Each stage trains with ``--resume
auto`` into work_dirs/<recipe>/ and is skipped once its export exists, so the chain can be
spread over several sessions. ``train`` records each
stage's wall time and device in work_dirs/shapes_reference/stages.json; ``report`` reads
the exports (LPIPS and rFID need their local weights, see docs/getting_started.md)."""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RECIPES = os.path.join('registry_configs', 'shapes')
STATE = os.path.join('work_dirs', 'shapes_reference')
# recipe -> the recipe whose export it starts from
CHAIN = {
    'teacher_flat64': None, 'teacher_textured128': None,
    'spc_flat64': 'teacher_flat64', 'spc_textured128': 'teacher_textured128',
    'sghc_flat64': 'spc_flat64', 'spc_only_decoder_flat64': 'spc_flat64',
    'sghc_textured128': 'spc_textured128', 'spc_only_decoder_textured128': 'spc_textured128',
}
WORLDS = {'flat64': dict(texture=False, resolution=64),
          'textured128': dict(texture=True, resolution=128)}
TARGETS = {'flat64': 'SGHC PSNR >= 30 dB, attribute accuracy >= 0.95, shapes-GenEval '
                     'reconstruction ceiling >= 0.90; >= 6 of 12 sub-codes in use per used '
                     'semantic code',
           'textured128': 'SGHC >= 3 dB PSNR over the SPC-only decoder at equal budget and '
                          'clearly lower LPIPS, semantic ids bit-identical'}


def export_of(name):
    return os.path.join('work_dirs', name, 'export')


def levels():
    """The chain's recipes grouped by depth (a level only needs the levels before it)."""
    depth = {}
    for name in CHAIN:
        d, parent = 0, CHAIN[name]
        while parent:
            d, parent = d + 1, CHAIN[parent]
        depth[name] = d
    return [[n for n in CHAIN if depth[n] == d] for d in range(max(depth.values()) + 1)]


def device_name():
    import torch
    return torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'


def train_stage(name, options=()):
    """tools/train.py on one recipe (resumed if it has checkpoints); wall time in s."""
    start = time.time()
    log = os.path.join('work_dirs', f'{name}.train.log')
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, 'w') as f:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, (ROOT, os.environ.get('PYTHONPATH')))))
        rc = subprocess.call([sys.executable, os.path.join(ROOT, 'tools', 'train.py'),
                              os.path.join(RECIPES, f'{name}.py'), '--resume', 'auto',
                              *(['--cfg-options', *options] if options else [])],
                             env=env, stdout=f, stderr=subprocess.STDOUT)
    if rc:
        raise RuntimeError(f'{name} failed (exit {rc}); its output is in {log}')
    return time.time() - start


def train(only, parallel, options):
    state_file = os.path.join(STATE, 'stages.json')
    os.makedirs(os.path.dirname(state_file), exist_ok=True)
    state = json.load(open(state_file)) if os.path.exists(state_file) else {}
    for level in levels():
        todo = [n for n in level if (not only or n in only)
                and not os.path.isfile(os.path.join(export_of(n), 'config.json'))]
        with ThreadPoolExecutor(max(1, min(parallel, len(todo)))) as pool:
            for name, seconds in zip(todo, pool.map(train_stage, todo, [options] * len(todo))):
                state[name] = {'wall_s': round(seconds, 1), 'device': device_name(),
                               'date': datetime.date.today().isoformat(),
                               'concurrent': len(todo)}
                print(f'{name}: {seconds:.0f} s', flush=True)
        with open(state_file, 'w') as f:
            json.dump(state, f, indent=1)


def semantic_ids_identical(tokenizer, spc, images):
    """Share of patches whose semantic id (global id // m) equals the stage-1 export's id."""
    import torch
    with torch.no_grad():
        ids = tokenizer.encode(images)
        sem = ids // tokenizer.sub_codes if tokenizer.sub_codes else ids
        return (sem == spc.encode(images)).float().mean().item()


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
    cfg = load_config(os.path.join(RECIPES, f'{name}.py'))
    model = PretrainedMixin.from_pretrained(export_of(name)).eval()
    work = os.path.join(STATE, name)
    os.makedirs(work, exist_ok=True)
    result = METRICS.build(dict(cfg.test_cfg.recon, fid=rfid))(model, work_dir=work)
    shutil.copy(result.pop('grid'), os.path.join(docs_images, f'shapes_reference_{name}.png'))
    world = WORLDS[name.rsplit('_', 1)[1]]
    spc = PretrainedMixin.from_pretrained(export_of(CHAIN[name])).eval()
    from unimm.datasets.shapes_datasets import ShapesCaptionDataset
    held_out = ShapesCaptionDataset(seed=0, start=100000, length=64, **world)
    images = torch.stack([held_out[i]['image'] for i in range(len(held_out))])
    result['semantic_ids_identical'] = semantic_ids_identical(model, spc, images)
    if not world['texture']:
        result['geneval_ceiling'] = geneval_ceiling(model, world)
    return result


ROW_KEYS = ('psnr', 'ssim', 'lpips', 'rfid', 'attribute_accuracy', 'pattern_accuracy',
            'usage_semantic', 'usage_subcodes', 'semantic_ids_identical', 'geneval_ceiling')


def fmt(v):
    return '–' if v is None else (f'{v:.3f}' if abs(v) < 10 else f'{v:.2f}')


def report(docs, rfid):
    images = os.path.join(docs, 'images')
    os.makedirs(images, exist_ok=True)
    stages = json.load(open(os.path.join(STATE, 'stages.json')))
    tokenizers = [n for n in CHAIN if n.startswith(('sghc', 'spc_only'))
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
    with open(os.path.join(docs, 'shapes_reference.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('command', choices=('train', 'report'))
    p.add_argument('--only', nargs='+', choices=sorted(CHAIN), help='train these recipes only')
    p.add_argument('--parallel', type=int, default=4, help='stages of one level side by side')
    p.add_argument('--docs', default='docs')
    p.add_argument('--rfid', action='store_true', help='also rFID (slow on a CPU)')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='k=v overrides for every stage, e.g. train_cfg.max_steps=10 (smoke runs)')
    args = p.parse_args(argv)
    if args.command == 'train':
        train(args.only, args.parallel, args.cfg_options)
    else:
        report(args.docs, args.rfid)


if __name__ == '__main__':
    main()
