"""The shapes-world reference chain behind tools/shapes_reference.py (what each command does:
the tool's help): the chain's steps (``STEPS``: tokenizer recipes, the reference LLM, the
pre-tokenised pairs, MLLM recipes and their evaluations; ``CHAINS``)
run in dependency order, several side by side, each through its tool in a subprocess
(tools/train.py, tools/test.py, tools/make_tiny_lm.py, tools/pretokenize.py, run from the
repository root); the reports score the exports on held-out scenes and write
docs/shapes_reference.md, the comparison table of docs/baselines.md or the seeded ablation
tables of docs/ablations.md; ``pack`` / ``unpack`` carry the results between machines.
``shapes_reference`` runs one command."""
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from functools import partial

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def result_path(name, task):
    """Where ``evaluate`` keeps recipe ``name``'s results of test task ``task``."""
    return os.path.join(STATE, name, f'test_{task}.json')


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


def cfg_options(name, options):
    """The cfg options a step ``name`` applies to its recipe: its own, then the chain's."""
    options = [*STEPS[name].options, *options]
    return ['--cfg-options', *options] if options else []


def train_recipe(name, options):
    """tools/train.py on step ``name``'s recipe into work_dirs/<name> (resumed if it has
    checkpoints)."""
    run_tool(f'{name}.train', 'train.py', [recipe_path(STEPS[name].recipe), '--work-dir',
                                           os.path.join('work_dirs', name), '--resume', 'auto',
                                           *cfg_options(name, options)])


def run_evaluation(name, task, own, options):
    """``evaluate`` as a step of the chain, with the evaluation's ``own`` cfg options; the
    chain's apply to the recipe read (training ignores test_cfg, tools/test.py train_cfg:
    one list serves both)."""
    evaluate(name, task, [*own, *options])


def make_lm(name, size, options):
    """tools/make_tiny_lm.py: a LLaMA of ``size`` (its arguments; None: ``LM_SIZE``) into
    work_dirs/<name>, its tokenizer also taught the vicuna_v1 system prompt."""
    from unimm.models.mllm.conversation import VICUNA_SYSTEM
    write_atomically(os.path.join('work_dirs', name), lambda out: run_tool(
        name, 'make_tiny_lm.py', ['--arch', 'llama', '--out', out, *(size or LM_SIZE),
                                  '--extra-text', VICUNA_SYSTEM]))


def pretokenize(name, recipe, options):
    """tools/pretokenize.py on ``recipe``'s _source_dataset with its image tokenizer into
    work_dirs/<name>; the cfg options apply to the recipe read."""
    write_atomically(os.path.join('work_dirs', name), lambda out: run_tool(
        name, 'pretokenize.py', [recipe_path(recipe), '--source', '_source_dataset',
                                 '--out', out, '--batch-size', '256', '--num-workers', '4',
                                 '--shard-size', '2500',
                                 *(['--cfg-options', *options] if options else [])]))


# needs: the steps it starts from; run(cfg options) does it; it is done once output exists;
# recipe: the recipe it trains (a path under RECIPES without .py), options: the cfg options
# it applies to that recipe before the chain's (e.g. its training seed)
Step = namedtuple('Step', 'needs run output recipe options', defaults=(None, ()))


def recipe(name, *needs, source=None, options=()):
    """The step that trains registry_configs/shapes/<source>.py (default: <name>) into
    work_dirs/<name> with its own cfg ``options``; done once it is exported."""
    return Step(needs, partial(train_recipe, name), os.path.join(export_of(name), 'config.json'),
                source or name, tuple(options))


def lm(name, size=None):
    """The step that makes a reference LLM (of ``size``, default ``LM_SIZE``) in
    work_dirs/<name>."""
    return Step((), partial(make_lm, name, size), os.path.join('work_dirs', name, 'config.json'))


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


# The baseline comparison (docs/baselines.md): each baseline tokenizer at sghc_flat64's
# budget (teacher_flat64 as its text-aligned tower where it has one), then its LLaVA and t2i
# models trained exactly as llava_sghc_flat64 / t2i_flat64 (the same reference LLM), each
# evaluated as a step of its own. The Janus-style dual encoder is two models the chains
# already train: teacher_flat64's continuous features (llava_teacher_flat64) and a pixel VQ
# (pixel_vq_flat64, t2i_pixel_vq_flat64).
BASELINES = ('joint', 'pixel_vq', 'dual_codebook')


def evaluation(name, task, options=()):
    """The step that runs tools/test.py --task ``task`` (with the cfg ``options``) on step
    ``name``'s export; done once its results are kept
    (work_dirs/shapes_reference/<name>/test_<task>.json)."""
    return Step((name,), partial(run_evaluation, name, task, tuple(options)),
                result_path(name, task))


def evaluations(understanding, generation):
    """The evaluation steps of LLaVA models ``understanding`` (held-out VQA,
    ``<name>.vqa``) and generators ``generation`` (each of GENEVAL_TASKS)."""
    steps = {f'{n}.vqa': evaluation(n, 'vqa') for n in understanding}
    steps.update({f'{n}.{task}': evaluation(n, task) for n in generation
                  for task in GENEVAL_TASKS})
    return steps


# The reference MLLMs' evaluations are steps too: each starts once its model is trained,
# beside the trainings still running, and keeps the results ``report`` reads.
STEPS.update(evaluations(UNDERSTANDING, GENERATION))


def keep_result(name, task, measure, options):
    """``measure(name)``, an evaluation of step ``name``'s export run in this process (the
    chain's cfg ``options`` configure recipes and do not apply), kept as
    work_dirs/shapes_reference/<name>/test_<task>.json (renamed into place once written)."""
    result = measure(name)
    path = result_path(name, task)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + '.tmp', 'w') as f:
        json.dump(result, f, indent=1)
    os.replace(path + '.tmp', path)


def measurement(name, task, measure, *needs):
    """The step that keeps ``measure(name)`` as step ``name``'s results of ``task``; it
    needs ``name`` and the steps ``needs``; done once its results are kept."""
    return Step((name, *needs), partial(keep_result, name, task, measure),
                result_path(name, task))


def torch_device():
    import torch
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def held_out_images(world, n):
    """Held-out scenes 100000.. of ``world`` (a WORLDS entry) as one [n, 3, H, W] batch."""
    import torch
    from unimm.datasets.shapes_datasets import ShapesCaptionDataset
    held_out = ShapesCaptionDataset(seed=0, start=100000, length=n, **world)
    return torch.stack([held_out[i]['image'] for i in range(n)])


def probe_settings():
    """The ablation tool's probe (unimm/apis/ablate.py, full mode) on the textured world."""
    from unimm.apis.ablate import settings
    probe = settings(quick=False)['probe']
    return dict(probe, **{part: dict(probe[part], **WORLDS['textured128'])
                          for part in ('train', 'test')})


def probe(vision):
    """The shapes probe (ablate.run_probe) on the frozen features ``vision``, with the
    settings it ran with."""
    from unimm.apis.ablate import run_probe
    settings = probe_settings()
    return dict(run_probe(vision.to(torch_device()), settings), settings=settings)


def probe_tokenizer(name):
    """The probe on the ``TokenizerFeatures`` of step ``name``'s export."""
    from unimm.models.mllm.features import TokenizerFeatures
    return probe(TokenizerFeatures(export_of(name)))


def probe_teacher(_name):
    """The probe on the continuous teacher features that the LLaVA reference row reads
    (its recipe's ``model.vision``)."""
    from mmengine.config import Config
    from unimm.registry import MODELS
    cfg = Config.fromfile(recipe_path(f'ablations/{LLAVA_REFERENCE}'))
    return probe(MODELS.build(cfg.model.vision))


def ids_against_spc(spc, name):
    """The share of patches of IDS_IMAGES held-out textured scenes whose semantic id in
    step ``name``'s export equals the id of the SPC export of step ``spc``."""
    from unimm.models.base import PretrainedMixin
    model, spc_model = (PretrainedMixin.from_pretrained(export_of(n)).eval().to(torch_device())
                        for n in (name, spc))
    images = held_out_images(WORLDS['textured128'], IDS_IMAGES).to(torch_device())
    return {'semantic_ids_identical': semantic_ids_identical(model, spc_model, images),
            'num_images': IDS_IMAGES, 'spc': spc}


def baseline_steps(kind):
    """Tokenizer, pre-tokenised pairs, LLaVA and t2i model (and their evaluations) of one
    baseline tokenizer ``kind``."""
    tok, tokens = f'{kind}_flat64', f't2i_{kind}_flat64_tokens'
    llava, t2i = f'llava_{tok}', f't2i_{tok}'
    steps = {tok: recipe(tok, *(() if kind == 'pixel_vq' else ('teacher_flat64',))),
             tokens: Step((tok,), partial(pretokenize, tokens, t2i),
                          os.path.join('work_dirs', tokens)),
             llava: recipe(llava, tok, 'reference_llama'),
             t2i: recipe(t2i, tok, 'reference_llama', tokens)}
    return {**steps, **evaluations([llava], [t2i])}


# The ablation chain (docs/ablations.md, the paper's Tab. 4 / Tab. 5 on the textured world):
# every row's recipe (registry_configs/shapes/ablations/ and the textured reference recipes)
# trained once per tokenizer training seed into work_dirs/<recipe>.s<seed>, each stage-2 row
# from its own seed's stage-1 export, each LLaVA row on its own seed's tokenizer; then the
# held-out reconstruction of each tokenizer and the VQA / POPE scores of each LLaVA model,
# whose test JSONs are what the report reads.
SEEDS = (0, 1, 2)
STAGE1 = {'spc_textured128': 'spc_textured128',
          'spc_random_textured128': 'ablations/spc_random_textured128'}
# stage-2 rows: recipe -> (its file under RECIPES, the stage-1 row it starts from)
STAGE2 = {'sghc_textured128': ('sghc_textured128', 'spc_textured128'),
          'spc_only_decoder_textured128': ('spc_only_decoder_textured128', 'spc_textured128'),
          'spc_random_only_decoder_textured128': ('ablations/spc_random_only_decoder_textured128',
                                                  'spc_random_textured128'),
          'joint_from_spc_textured128': ('ablations/joint_from_spc_textured128',
                                         'spc_textured128')}
STAGE2.update({f'sghc_{v}_textured128': (f'ablations/sghc_{v}_textured128', 'spc_textured128')
               for v in ('length', 'texture', 'm8', 'm16')})
# LLaVA rows: the tokenizer row whose features they read (seeded alike)
LLAVA = {f'llava_{t}': t for t in ('spc_random_textured128', 'spc_textured128',
                                   'joint_from_spc_textured128', 'sghc_textured128')}
# the continuous-feature reference (no tokenizer to repeat): its first seed only, and the
# probe of those features under the teacher's first seed's name
LLAVA_REFERENCE = 'llava_teacher_textured128'
TEACHER = 'teacher_textured128'
RECON_IMAGES = 2000  # held-out scenes of each tokenizer's reconstruction test
IDS_IMAGES = 256  # held-out scenes of each semantic-id check
# stage-2 rows whose semantic ids must stay their SPC's (SemHiTok: every stage-2 row but
# the joint tokenizer, whose encoder trains)
SEMANTIC_FROM_SPC = tuple(n for n in STAGE2 if n != 'joint_from_spc_textured128')

# The rows of the ablation report (docs/ablations.md, between ablate.GPU_MARKERS): Tab. 4 rows as
# (label, tokenizer row, LLaVA row), Tab. 5 rows as (label, tokenizer row, m)
ABLATION_TAB4 = (
    ('SPC, random-init encoder (distilled from the teacher)',
     'spc_random_only_decoder_textured128', 'llava_spc_random_textured128'),
    ('SPC, teacher init', 'spc_only_decoder_textured128', 'llava_spc_textured128'),
    ('+ joint texture training from the SPC (MUSE-VL)', 'joint_from_spc_textured128',
     'llava_joint_from_spc_textured128'),
    ('+ SGHC (SemHiTok)', 'sghc_textured128', 'llava_sghc_textured128'),
    ("reference: the teacher's continuous features", TEACHER, LLAVA_REFERENCE))
ABLATION_TAB5 = (
    ('texture only (w/o sem)', 'sghc_texture_textured128', 12),
    ('semantic only (no texture branch)', 'spc_only_decoder_textured128', None),
    ('length concat', 'sghc_length_textured128', 12),
    ('channel concat, m = 8', 'sghc_m8_textured128', 8),
    ('channel concat, m = 12', 'sghc_textured128', 12),
    ('channel concat, m = 16', 'sghc_m16_textured128', 16))


def seeded(name, seed):
    """The step (and work_dirs folder) of recipe ``name`` trained with seed ``seed``."""
    return f'{name}.s{seed}'


def recon_options():
    """The ablation chain's reconstruction test: RECON_IMAGES held-out scenes, LPIPS, and
    rFID where its Inception weights exist on this machine."""
    from unimm.evaluation.recon_metrics import default_fid_weights
    return [f'test_cfg.recon.dataset.length={RECON_IMAGES}',
            *([] if os.path.exists(default_fid_weights()) else ['test_cfg.recon.fid=False'])]


def ablation_steps(seed):
    """One training seed's steps of the ablation chain: both stage-1 SPCs, every stage-2
    row from its own seed's SPC, the LLaVA rows on their own seed's tokenizer (the
    continuous reference at the first seed), and their evaluations."""
    seed_option = f'randomness.seed={seed}'
    steps = {seeded(n, seed): recipe(seeded(n, seed), TEACHER, source=path,
                                     options=[seed_option])
             for n, path in STAGE1.items()}
    for n, (path, spc) in STAGE2.items():
        steps[seeded(n, seed)] = recipe(
            seeded(n, seed), seeded(spc, seed), source=path,
            options=[seed_option, f'model.init_from={export_of(seeded(spc, seed))}'])
    for n, tokenizer in LLAVA.items():
        steps[seeded(n, seed)] = recipe(
            seeded(n, seed), seeded(tokenizer, seed), 'reference_llama',
            source=f'ablations/{n}', options=[
                seed_option, f'model.vision.tokenizer={export_of(seeded(tokenizer, seed))}'])
    if seed == SEEDS[0]:
        steps[seeded(LLAVA_REFERENCE, seed)] = recipe(
            seeded(LLAVA_REFERENCE, seed), TEACHER, 'reference_llama',
            source=f'ablations/{LLAVA_REFERENCE}', options=[seed_option])
        steps[f'{seeded(TEACHER, seed)}.probe'] = Step(
            (TEACHER,), partial(keep_result, seeded(TEACHER, seed), 'probe', probe_teacher),
            result_path(seeded(TEACHER, seed), 'probe'))
    recon = recon_options()
    probed = {tokenizer for _, tokenizer, _ in ABLATION_TAB4}  # the teacher's: above
    for name in list(steps):
        row = name.split('.')[0]
        if name.startswith('llava_'):
            steps.update({f'{name}.{task}': evaluation(name, task) for task in ('vqa', 'pope')})
        elif row in STAGE2:
            steps[f'{name}.recon'] = evaluation(name, 'recon', recon)
            if row in probed:
                steps[f'{name}.probe'] = measurement(name, 'probe', probe_tokenizer)
            if row in SEMANTIC_FROM_SPC:
                spc = seeded(STAGE2[row][1], seed)
                steps[f'{name}.ids'] = measurement(name, 'ids', partial(ids_against_spc, spc),
                                                   spc)
    return steps


CHAINS = {'baselines': [n for kind in BASELINES for n in baseline_steps(kind)],
          'ablations': [n for seed in SEEDS for n in ablation_steps(seed)]}
CHAINS['reference'] = list(STEPS)
# The t2i scaling study (docs/baselines.md): t2i_flat64's recipe with a 512-wide, 8-layer
# LLM on 4 times the scenes at 4 times the batch, and its shapes-GenEval.
SCALING = {'reference_llama_512': lm('reference_llama_512',
                                     ['--hidden-size', '512', '--layers', '8', '--heads', '8']),
           't2i_flat64_llm512_tokens': Step(('sghc_flat64', 'reference_llama_512'),
                                            partial(pretokenize, 't2i_flat64_llm512_tokens',
                                                    't2i_flat64_llm512'),
                                            os.path.join('work_dirs', 't2i_flat64_llm512_tokens')),
           't2i_flat64_llm512': recipe('t2i_flat64_llm512', 'sghc_flat64', 'reference_llama_512',
                                       't2i_flat64_llm512_tokens'),
           't2i_flat64_llm512.shapes_geneval': evaluation('t2i_flat64_llm512', 'shapes_geneval')}
CHAINS['scaling'] = list(SCALING)
STEPS.update(SCALING)
for kind in BASELINES:
    STEPS.update(baseline_steps(kind))
for seed in SEEDS:
    STEPS.update(ablation_steps(seed))


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


def prerequisites(name):
    """Every step that ``name`` needs, directly or not."""
    needs = set(STEPS[name].needs)
    return needs.union(*map(prerequisites, needs))


def to_run(only=None, chain=None):
    """The unfinished steps of ``chain`` (every step without one) named by ``only`` (all
    without it), with every unfinished step they need, directly or not, in STEPS order."""
    todo, stack = set(), [n for n in CHAINS.get(chain, STEPS)
                          if (not only or n in only) and not done(n)]
    while stack:
        name = stack.pop()
        if name not in todo:
            todo.add(name)
            stack += [n for n in STEPS[name].needs if not done(n)]
    return [n for n in STEPS if n in todo]


def _stop(signum, _frame):
    raise SystemExit(128 + signum)


def train(only, parallel, options, chain=None):
    """Runs the steps ``to_run`` selects, up to ``parallel`` side by side, each as soon
    as none of its prerequisites is still to run; records each one in stages.json. A failed
    step stops the chain once the steps running beside it have finished. Stopped by SIGTERM
    (e.g. ``timeout``, which signals the steps' tools too: a training saves a checkpoint),
    it keeps how long each running step had run in interrupted.json, and a step resumed
    later records the sum of its runs."""
    state_file = os.path.join(STATE, 'stages.json')
    interrupted_file = os.path.join(STATE, 'interrupted.json')
    os.makedirs(os.path.dirname(state_file), exist_ok=True)
    state = recorded_stages()
    earlier = {}
    if os.path.exists(interrupted_file):
        with open(interrupted_file) as f:
            earlier = json.load(f)
    todo = to_run(only, chain)
    running, concurrent, failed, started = {}, {}, [], {}
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with ThreadPoolExecutor(max(1, parallel)) as pool:
            while running or (todo and not failed):
                for name in [n for n in todo
                             if not set(STEPS[n].needs) & {*todo, *running.values()}]:
                    if failed or len(running) == parallel:
                        break
                    todo.remove(name)
                    running[pool.submit(run_step, name, options)] = name
                    concurrent[name], started[name] = len(running), time.time()
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    del started[name]
                    if future.exception():
                        failed.append(future.exception())
                        continue
                    wall = future.result() + earlier.pop(name, 0.0)
                    state[name] = {'wall_s': round(wall, 1), 'device': device_name(),
                                   'date': datetime.date.today().isoformat(),
                                   'concurrent': concurrent[name]}
                    print(f'{name}: {wall:.0f} s', flush=True)
                with open(state_file, 'w') as f:
                    json.dump(state, f, indent=1)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for name, start in started.items():
            earlier[name] = earlier.get(name, 0.0) + time.time() - start
        if earlier:
            with open(interrupted_file, 'w') as f:
                json.dump(earlier, f, indent=1)
        elif os.path.exists(interrupted_file):
            os.remove(interrupted_file)
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
    from unimm.engine.config import load_config
    from unimm.models.base import PretrainedMixin
    from unimm.registry import METRICS
    cfg = load_config(recipe_path(name))
    model = PretrainedMixin.from_pretrained(export_of(name)).eval()
    work = os.path.join(STATE, name)
    os.makedirs(work, exist_ok=True)
    result = METRICS.build(dict(cfg.test_cfg.recon, fid=rfid))(model, work_dir=work)
    shutil.copy(result.pop('grid'), os.path.join(docs_images, f'shapes_reference_{name}.png'))
    result['vocab_size'] = model.vocab_size
    world = WORLDS[name.rsplit('_', 1)[1]]
    images = held_out_images(world, 64)
    if type(model).__name__ == 'SemHiTok':  # against its stage-1 export
        spc = PretrainedMixin.from_pretrained(export_of(STEPS[name].needs[0])).eval()
        result['semantic_ids_identical'] = semantic_ids_identical(model, spc, images)
    result.update(edge_error(model, images))
    if not world['texture']:
        result['geneval_ceiling'] = geneval_ceiling(model, world)
    return result


def tokenizer_scores(name, docs_images, rfid=False):
    """``score_tokenizer``'s results, kept in work_dirs/shapes_reference/<name>/scores.json
    and reused while the export is not newer (or absent) and they hold rFID if asked."""
    kept = os.path.join(STATE, name, 'scores.json')
    export = STEPS[name].output
    if os.path.exists(kept) and not (os.path.exists(export)
                                     and os.path.getmtime(export) > os.path.getmtime(kept)):
        with open(kept) as f:
            result = json.load(f)
        if 'rfid' in result or not rfid:
            return result
    result = score_tokenizer(name, docs_images, rfid)
    with open(kept, 'w') as f:
        json.dump(result, f, indent=1)
    return result


class _RealImages:
    """The identity in place of a tokenizer: the scorers on the images themselves."""

    @staticmethod
    def reconstruct(images):
        return images


def ground_truth_scores(world_name='flat64'):
    """What the scorers give the real held-out images (a perfect tokenizer): attribute
    accuracy of the reconstruction test's images and shapes-GenEval of true renders; kept
    in work_dirs/shapes_reference/ground_truth_<world>.json."""
    kept = os.path.join(STATE, f'ground_truth_{world_name}.json')
    if os.path.exists(kept):
        with open(kept) as f:
            return json.load(f)
    from unimm.datasets.shapes import parse_image, score_caption_attributes
    from unimm.engine.config import load_config
    from unimm.registry import DATASETS
    world = WORLDS[world_name]
    dataset = DATASETS.build(load_config(recipe_path(f'sghc_{world_name}')).test_cfg.recon.dataset)
    accuracy = sum(score_caption_attributes(item['image'], dataset.world.scene(item['index']),
                                            parse_image(item['image'], texture=world['texture']))
                   for item in map(dataset.__getitem__, range(len(dataset)))) / len(dataset)
    result = {'attribute_accuracy': accuracy, 'num_images': len(dataset),
              'geneval_ceiling': geneval_ceiling(_RealImages, world)}
    os.makedirs(STATE, exist_ok=True)
    with open(kept, 'w') as f:
        json.dump(result, f, indent=1)
    return result


ROW_KEYS = ('psnr', 'ssim', 'lpips', 'rfid', 'attribute_accuracy', 'pattern_accuracy',
            'usage_semantic', 'usage_subcodes', 'semantic_ids_identical', 'geneval_ceiling',
            'edge_pixels', 'edge_error_share', 'psnr_off_edges')


def fmt(v):
    if isinstance(v, int):
        return f'{v:,}'
    return '–' if v is None else (f'{v:.3f}' if abs(v) < 10 else f'{v:.2f}')


def evaluate(name, task, options=()):
    """tools/test.py on one recipe's export (``options``: cfg options of the recipe read);
    its results, kept in work_dirs/shapes_reference/<name>/test_<task>.json and reused while
    the export is not newer (or absent: results brought back from the GPU without the
    export)."""
    work = os.path.join(STATE, name)
    result = result_path(name, task)
    export = STEPS[name].output
    if not os.path.exists(result) or (
            os.path.exists(export) and os.path.getmtime(export) > os.path.getmtime(result)):
        run_tool(os.path.join('shapes_reference', f'{name}.{task}'), 'test.py',
                 [recipe_path(STEPS[name].recipe), export_of(name), '--task', task,
                  '--work-dir', work, *cfg_options(name, options)])
    with open(result) as f:
        return json.load(f)


def evaluated(name, task):
    """Whether ``name`` has an export or kept results for ``task`` to report."""
    return done(name) or os.path.exists(os.path.join(STATE, name, f'test_{task}.json'))


def geneval_by_prompt(name):
    """(tag, share of its samples correct) per prompt of step ``name``'s shapes-GenEval,
    scored again from the samples its evaluation saved in GenEval's folder layout
    (work_dirs/shapes_reference/<name>/shapes_geneval/); None where they were not kept."""
    from PIL import Image
    from unimm.datasets.shapes import score_prompt
    from unimm.datasets.transforms import pil_to_tensor
    root = os.path.join(STATE, name, 'shapes_geneval')
    if not os.path.isdir(root):
        return None
    rows = []
    for prompt in sorted(os.listdir(root)):
        with open(os.path.join(root, prompt, 'metadata.jsonl')) as f:
            spec = json.loads(f.readline())
        samples = os.path.join(root, prompt, 'samples')
        correct = [score_prompt(pil_to_tensor(Image.open(os.path.join(samples, s))
                                              .convert('RGB')), spec)['correct']
                   for s in sorted(os.listdir(samples))]
        rows.append((spec['tag'], sum(correct) / len(correct)))
    return rows


def paired_interval(a, b, draws=10000, seed=0):
    """The 95 % interval of overall(a) - overall(b) (overall: the mean over tags of the mean
    over a tag's prompts, as shapes-GenEval's) for two models' ``geneval_by_prompt`` of the
    same prompts, the prompts resampled within each tag (a paired bootstrap)."""
    import numpy as np
    if [t for t, _ in a] != [t for t, _ in b]:
        raise ValueError('paired_interval: the two runs scored different prompts')
    rng, tags = np.random.default_rng(seed), sorted({t for t, _ in a})
    diffs = np.zeros(draws)
    for tag in tags:
        d = np.array([x - y for (t, x), (_, y) in zip(a, b) if t == tag])
        diffs += d[rng.integers(0, len(d), (draws, len(d)))].mean(1) / len(tags)
    return tuple(np.percentile(diffs, [2.5, 97.5]))


def gap_line(task, scores, single, by_prompt=None):
    """The unified model's score minus its single-task model's, where both were scored;
    with the paired-bootstrap interval where ``by_prompt`` (name -> ``geneval_by_prompt``)
    holds both."""
    if 'unified_flat64' not in scores or single not in scores:
        return []
    line = (f"- {task}: unified_flat64 {scores['unified_flat64']:.3f} against {single} "
            f"{scores[single]:.3f} ({scores['unified_flat64'] - scores[single]:+.3f}")
    pair = [(by_prompt or {}).get(n) for n in ('unified_flat64', single)]
    if all(pair):
        low, high = paired_interval(*pair)
        line += (f'; 95 % interval {low:+.3f} to {high:+.3f}, a paired bootstrap over the '
                 f'{len(pair[0])} prompts, resampled within each category')
    return [line + ')']


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
        + gap_line('shapes-GenEval', {n: v[0] for n, v in geneval.items()}, 't2i_flat64',
                   {n: geneval_by_prompt(n) for n in geneval})
    return lines + (['', 'Unified against single-task (target: within 0.03):', *gaps]
                    if gaps else [])


def recorded_stages():
    """work_dirs/shapes_reference/stages.json: each finished step's device, date, wall time
    and how many steps ran beside it ({} before the first)."""
    path = os.path.join(STATE, 'stages.json')
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def stage_table(steps, stages, first='run', side='runs side by side'):
    """Markdown rows of the recorded ``stages`` of ``steps``."""
    return ([f'| {first} | device | date | wall time | {side} |',
             '| --- | --- | --- | --- | --- |']
            + [f"| {n} | {stages[n]['device']} | {stages[n]['date']} | "
               f"{stages[n]['wall_s'] / 60:.1f} min | {stages[n]['concurrent']} |"
               for n in steps])


def report(docs, rfid):
    images = os.path.join(docs, 'images')
    os.makedirs(images, exist_ok=True)
    stages = recorded_stages()
    tokenizers = [n for n in STEPS if n.startswith(('sghc', 'spc_only'))
                  and os.path.isdir(export_of(n))]
    scores = {n: tokenizer_scores(n, images, rfid) for n in tokenizers}
    with open(os.path.join(STATE, 'scores.json'), 'w') as f:
        json.dump(scores, f, indent=1)
    lines = ['# Shapes-world reference results', '',
             'Generated by `python tools/shapes_reference.py train` (on the GPU) and `report` '
             f'({datetime.date.today().isoformat()}); do not edit by hand. Held-out scenes '
             '100000.. of each world, scored with the project\'s own scorers; the recipes are '
             'in `registry_configs/shapes/`.', '',
             '## Training time per stage', '']
    lines += stage_table([n for n in CHAINS['reference'] if n in stages], stages, 'recipe',
                         'stages run side by side')
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


# The rows of the comparison: (tokenizer, what it is, its tokenizer step, LLaVA, t2i)
COMPARISON = (
    ('SemHiTok (SGHC)', 'K = 1024 semantic codes (SPC, stage 1) x 12 pixel sub-codes each '
     '(stage 2)', 'sghc_flat64', 'llava_sghc_flat64', 't2i_flat64'),
    ('SPC only', 'the 1024 semantic codes alone under a pixel decoder (no texture branch)',
     'spc_only_decoder_flat64', None, None),
    ('joint (VILA-U / MUSE-VL)', 'one 12,288 x 16 codebook on the teacher tower trained with '
     'cosine + pixel losses together', 'joint_flat64', 'llava_joint_flat64',
     't2i_joint_flat64'),
    ('dual codebook (TokenFlow)', '12,288 paired 16-d semantic / 16-d pixel codes, one shared '
     'index; frozen teacher', 'dual_codebook_flat64', 'llava_dual_codebook_flat64',
     't2i_dual_codebook_flat64'),
    ('pixel VQ (LlamaGen)', 'a 12,288 x 8 codebook between a ViT pixel encoder and decoder, no '
     'teacher', 'pixel_vq_flat64', 'llava_pixel_vq_flat64', 't2i_pixel_vq_flat64'),
    ('dual encoder (Janus)', "understanding: teacher_flat64's continuous features; generation: "
     "the pixel VQ's ids (the row above)", 'pixel_vq_flat64', 'llava_teacher_flat64',
     't2i_pixel_vq_flat64'),
)
COMPARISON_KEYS = ('psnr', 'ssim', 'lpips', 'attribute_accuracy', 'usage_global',
                   'distinct_ids', 'id_entropy', 'position_entropy', 'geneval_ceiling')
MARKERS = ('<!-- comparison:begin (generated by tools/shapes_reference.py report --chain '
           'baselines; do not edit by hand) -->', '<!-- comparison:end -->')


def kept_result(name, task):
    """``evaluate``'s results of ``name`` for ``task``, or None where there are none (yet)."""
    return evaluate(name, task) if name and evaluated(name, task) else None


def final_loss(name, tail=0.1):
    """Mean logged training loss of work_dirs/<name> over the last ``tail`` of its steps."""
    path = os.path.join('work_dirs', name, 'log.jsonl')
    if not os.path.exists(path):
        return None
    with open(path) as f:
        logged = [(r['step'], r['loss']) for r in map(json.loads, f) if 'loss' in r]
    if not logged:
        return None
    last = logged[-1][0] * (1 - tail)
    values = [loss for step, loss in logged if step > last]
    return sum(values) / len(values)


def comparison_section(docs_images, rfid=False):
    """The generated part of docs/baselines.md: per tokenizer the held-out reconstruction
    scores, the shapes-VQA exact match of its LLaVA model and the shapes-GenEval of its t2i
    model, with the blind / random-token floor, what the real images score, and the wall
    time of every step behind a number."""
    stages = recorded_stages()
    tokenizers = {tok: tokenizer_scores(tok, docs_images, rfid)
                  for _, _, tok, _, _ in COMPARISON
                  if os.path.exists(STEPS[tok].output)
                  or os.path.exists(os.path.join(STATE, tok, 'scores.json'))}
    vqa = {r[3]: kept_result(r[3], 'vqa') for r in COMPARISON}
    geneval = {r[4]: [kept_result(r[4], t) for t in GENEVAL_TASKS] for r in COMPARISON}
    truth = ground_truth_scores('flat64')
    header = ['tokenizer', 'ids', 'PSNR', 'SSIM', 'LPIPS', 'attribute accuracy',
              'codebook usage', 'distinct ids', 'id entropy', 'per-position entropy',
              'GenEval reconstruction ceiling', 'VQA exact match', 'shapes-GenEval',
              't2i final loss']
    lines = [MARKERS[0], '', f'Generated {datetime.date.today().isoformat()} from the runs '
             'listed below (held-out scenes 100000.. of the flat 64 px world; the recipes are '
             'in `registry_configs/shapes/`, the steps in `tools/shapes_reference.py`). A dash: '
             'not run yet, or not applicable.', '',
             '| ' + ' | '.join(header) + ' |', '| --- ' * len(header) + '|']
    for label, _, tok, llava, t2i in COMPARISON:
        score = tokenizers.get(tok, {})
        answer, drawn = vqa.get(llava), geneval.get(t2i, [None])[0]
        cells = [label, f"{score['vocab_size']:,}" if 'vocab_size' in score else '–',
                 *(fmt(score.get(k)) for k in COMPARISON_KEYS),
                 fmt(answer and answer['accuracy']), fmt(drawn and drawn['overall']),
                 fmt(t2i and final_loss(t2i))]
        lines.append('| ' + ' | '.join(cells) + ' |')
    blind = next((r['blind_baseline'] for r in vqa.values() if r), None)
    floors = [g[1]['overall'] for g in geneval.values() if g[1]]
    keys = ('ids',) + COMPARISON_KEYS
    lines.append('| ' + ' | '.join(['blind / random tokens'] + ['–'] * len(keys) + [
        fmt(blind), fmt(max(floors) if floors else None), '–']) + ' |')
    lines.append('| ' + ' | '.join(['real images'] + [fmt(truth.get(k)) for k in keys]
                                   + ['–'] * 3) + ' |')
    lines += ['', 'What each row is (its recipes: the tokenizer step, its LLaVA and t2i '
              'models):', '']
    lines += [f"- **{label}**: {what}. `{tok}`, `{llava or '–'}`, `{t2i or '–'}`."
              for label, what, tok, llava, t2i in COMPARISON]
    lines += ['', 'Columns: PSNR / SSIM / LPIPS / attribute accuracy (the shapes scorer finds '
              "every shape with the right colour, kind, size and place) on 500 held-out "
              'reconstructions; codebook usage: share of the ids in use on them, distinct ids '
              'the number, id entropy (nats) of the ids pooled and per-position entropy of one '
              'grid cell across images: what a generator of these ids must model per token; '
              'GenEval '
              'reconstruction ceiling: shapes-GenEval of correct scenes passed through the '
              'tokenizer (the best a generator of its ids can score); VQA exact match: the '
              "tokenizer's LLaVA model (llava_sghc_flat64's recipe) on 1000 held-out questions; "
              "shapes-GenEval: its t2i model (t2i_flat64's recipe), 100 prompts x 4 samples, "
              'CFG 3; t2i final loss: its training loss (nats per token), mean over its last '
              '10 % of steps. Blind: the most frequent answer per question type; random '
              'tokens: the '
              'best of the t2i models fed uniform ids (the floor); real images: the scorers on '
              'the images themselves.']
    behind = set().union(*(prerequisites(n) | {n} for r in COMPARISON for n in r[2:] if n))
    steps = [n for n in STEPS if n in behind and n in stages]
    if steps:
        lines += [''] + stage_table(steps, stages)
    return lines + ['', MARKERS[1]]


def write_between_markers(path, lines, markers=MARKERS):
    """Replaces what lies between ``markers`` in ``path`` (appended if they are absent)."""
    text = open(path).read() if os.path.exists(path) else ''
    block = '\n'.join(lines)
    if markers[0] in text and markers[1] in text:
        head, rest = text.split(markers[0], 1)
        text = head + block + rest.split(markers[1], 1)[1]
    else:
        text = text.rstrip('\n') + ('\n\n' if text else '') + block + '\n'
    with open(path, 'w') as f:
        f.write(text)


def report_baselines(docs, rfid):
    images = os.path.join(docs, 'images')
    os.makedirs(images, exist_ok=True)
    lines = comparison_section(images, rfid)
    write_between_markers(os.path.join(docs, 'baselines.md'), lines)
    print('\n'.join(lines))


# (column, task, result key, digits, scale) of the tables
RECON_COLUMNS = (('PSNR', 'recon', 'psnr', 2, 1), ('SSIM', 'recon', 'ssim', 3, 1),
                 ('LPIPS', 'recon', 'lpips', 3, 1), ('rFID', 'recon', 'rfid', 2, 1),
                 ('distinct ids', 'recon', 'distinct_ids', 0, 1))
TAB4_COLUMNS = RECON_COLUMNS + (
    ('attr. acc.', 'recon', 'attribute_accuracy', 3, 1),
    ('pattern acc.', 'recon', 'pattern_accuracy', 3, 1),
    ('VQA exact match', 'vqa', 'accuracy', 3, 1), ('POPE acc.', 'pope', 'accuracy', 3, 1),
    ('POPE F1', 'pope', 'f1', 3, 1), ('probe acc.', 'probe', 'accuracy', 3, 1))
TAB5_COLUMNS = RECON_COLUMNS + (('usage (global, %)', 'recon', 'usage_global', 1, 100),
                                ('usage (semantic, %)', 'recon', 'usage_semantic', 1, 100))


def seed_results(name, task):
    """The kept results of ``task`` of ablation row ``name``, one dict per seed that has
    them (in SEEDS order)."""
    paths = [result_path(seeded(name, seed), task) for seed in SEEDS]
    return [json.load(open(p)) for p in paths if os.path.exists(p)]


def seed_values(runs, key, scale=1):
    """The per-seed values of ``key`` in ``runs`` (``seed_results``), where present."""
    return [scale * r[key] for r in runs if r.get(key) is not None]


def ablation_rows(rows, tokenizer_tasks, tasks):
    """{label: {task: seed_results}} of the rows ((label, tokenizer, LLaVA / m) tuples);
    the tokenizer's ``tokenizer_tasks``, the LLaVA row's ``tasks``."""
    out = {}
    for label, tokenizer, other in rows:
        runs = {task: seed_results(tokenizer, task) if tokenizer else []
                for task in tokenizer_tasks}
        for task in tasks:
            runs[task] = seed_results(other, task)
        out[label] = runs
    return out


def seed_cell(values, digits):
    """'mean ± sd (seeds)' of per-seed values, '—' without any."""
    from unimm.apis.verdicts import mean_sd
    return mean_sd(values, digits) if values else '—'


def row_cells(runs, columns):
    """``seed_cell`` per column of ``columns`` for one row's ``runs`` {task: results}."""
    return [seed_cell(seed_values(runs.get(task, []), key, scale), digits)
            for _, task, key, digits, scale in columns]


def ids_cell(tokenizer, runs):
    """Whether stage 2 left the row's semantic ids as its SPC's, over the seeds checked
    (``runs``: the row's 'ids' results): 'identical', 'differs' (with the lowest share of
    equal ids), '—' before any check, 'n/a' for a row not built on an SPC's ids."""
    if tokenizer not in SEMANTIC_FROM_SPC:
        return 'n/a'
    shares = seed_values(runs, 'semantic_ids_identical')
    if not shares:
        return '—'
    if min(shares) == 1:
        return f'identical ({len(shares)})'
    return f'differs ({len(shares)}; lowest share {min(shares):.4f})'


def usage_row(m, runs):
    """The row ``verdicts.usage_claim`` reads: m and the per-seed sub-code share and
    distinct ids of the reconstruction results ``runs``."""
    return dict(m=m, usage_subcodes=seed_values(runs, 'usage_subcodes'),
                distinct_ids=seed_values(runs, 'distinct_ids'))


def seeds_run(runs):
    """The row's status cell: 'not run', or the seeds with results per task."""
    counts = {t: len(r) for t, r in runs.items() if r}
    return ', '.join(f'{t} {n}' for t, n in counts.items()) if counts else 'not run'


def ablation_claim(claim, paper, judge, *rows):
    """(claim, paper, evidence, verdict): ``judge(*rows)`` (a verdicts.py claim), or 'not
    run' while a row it compares has no seed."""
    if not all(rows):
        return claim, paper, 'not run', 'not run'
    return (claim, paper, *judge(*rows))


def ablation_claims(tab4, tab5):
    """The paper's Tab. 4 / Tab. 5 claims judged on the seeds (unimm.apis.verdicts)."""
    from unimm.apis.ablate import PAPER
    from unimm.apis.verdicts import kept_claim, metric_claim, usage_claim
    sghc, spc = tab4['+ SGHC (SemHiTok)'], tab4['SPC, teacher init']
    joint = tab4['+ joint texture training from the SPC (MUSE-VL)']
    rnd = tab4['SPC, random-init encoder (distilled from the teacher)']
    out = []
    for task, name in (('vqa', 'VQA exact match'), ('pope', 'POPE accuracy'),
                       ('probe', 'probe accuracy')):
        get = lambda row: seed_values(row[task], 'accuracy')  # noqa: E731
        out += [
            ablation_claim(f'SGHC keeps the understanding of its SPC ({name})', PAPER['kept'],
                           lambda a, b: kept_claim(('SGHC', a), ('SPC', b), name=name),
                           get(sghc), get(spc)),
            ablation_claim(f'joint texture training costs understanding ({name})',
                           PAPER['joint'], lambda a, b: metric_claim(
                               ('SPC', a), {'joint': b}, digits=3, name=name),
                           get(spc), get(joint)),
            ablation_claim(f'initialising the semantic encoder from the teacher helps '
                           f'understanding ({name})', PAPER['init'], lambda a, b: metric_claim(
                               ('teacher init', a), {'random init': b}, digits=3, name=name),
                           get(spc), get(rnd))]
    chan, length = tab5['channel concat, m = 12'], tab5['length concat']
    tex = tab5['texture only (w/o sem)']
    by_m = {m: tab5[f'channel concat, m = {m}'] for m in (8, 12, 16)}
    involved = [sghc, spc, joint, chan, length, tex, *by_m.values()]
    # rFID (the paper's metric) where every run has it, else LPIPS; lower is better
    key = 'rfid' if all(len(seed_values(r['recon'], 'rfid')) == len(r['recon'])
                        for r in involved) else 'lpips'
    get = lambda row: seed_values(row['recon'], key)  # noqa: E731

    def better(winner, *others):
        """The judge of "``winner`` reconstructs better than each of ``others``"."""
        return lambda w, *o: metric_claim((winner, w), dict(zip(others, o)), False, 3, key)

    out += [
        ablation_claim('SGHC reconstructs better than the SPC alone and than joint training',
                       PAPER['sghc_recon'], better('SGHC', 'SPC', 'joint'),
                       get(sghc), get(spc), get(joint)),
        ablation_claim('channel concat beats length concat and texture-only', PAPER['fusion'],
                       better('channel', 'length', 'texture-only'),
                       get(chan), get(length), get(tex)),
        ablation_claim('a larger sub-codebook reconstructs better', PAPER['m_recon'],
                       better('m = 16', 'm = 12', 'm = 8'),
                       get(by_m[16]), get(by_m[12]), get(by_m[8]))]
    usage = [usage_row(m, r['recon']) for m, r in by_m.items()]
    out.append(ablation_claim('codebook usage falls as the sub-codebook grows', PAPER['usage'],
                              lambda *rows: usage_claim(rows),
                              *(u if u['usage_subcodes'] else None for u in usage)))
    return out


def ablation_section():
    """The generated GPU part of docs/ablations.md: Tab. 4 / Tab. 5 as mean ± sd over the
    training seeds, the verdict of each claim, and the wall time of every step behind them
    (stages.json). A row without results says 'not run'."""
    from unimm.apis.ablate import GPU_MARKERS, md_table
    from unimm.apis.verdicts import K_SE, subcodes_in_use
    stages = recorded_stages()
    tab4 = ablation_rows(ABLATION_TAB4, ('recon', 'probe', 'ids'), ('vqa', 'pope'))
    tab5 = ablation_rows([(label, tok, None) for label, tok, _ in ABLATION_TAB5],
                         ('recon', 'ids'), ())
    sub_codes = {label: seed_cell(subcodes_in_use(usage_row(m, tab5[label]['recon'])), 1)
                 if m else '—' for label, _, m in ABLATION_TAB5}
    head = ['row', 'tokenizer', 'LLaVA', 'seeds with results']
    lines = [GPU_MARKERS[0], '', '## Tab. 4 / Tab. 5 on the GPU: textured 128 px world, '
             f'{len(SEEDS)} training seeds per row', '',
             f'Generated {datetime.date.today().isoformat()} by `python tools/shapes_reference.py '
             'report --chain ablations` from the test results that `train --chain ablations` '
             'keeps in work_dirs/shapes_reference/<row>.s<seed>/ (seeds '
             f'{", ".join(map(str, SEEDS))}; each stage-2 row starts from its own seed\'s SPC, '
             "each LLaVA row reads its own seed's tokenizer). Cells: mean ± sd (seeds). "
             f'Reconstruction: {RECON_IMAGES} held-out scenes (100000..); VQA / POPE: the '
             'LLaVA recipes of registry_configs/shapes/ablations/ on held-out textured scenes; '
             "probe: tools/ablate.py's shapes probe (mean exact-answer accuracy over count, "
             "colours, kinds and colour-kind pairs) on the tokenizer's LLM features of "
             "textured scenes (the teacher row: its continuous features, as its LLaVA row "
             "reads them, first seed only); "
             f'semantic ids: the row\'s semantic ids against its own seed\'s '
             f'SPC\'s on {IDS_IMAGES} held-out scenes ("identical" at every seed checked, '
             '"n/a": a row not built on an SPC\'s ids). "not run": no results yet.', '',
             '### Tab. 4: semantic-encoder init, joint texture training, SGHC', '',
             md_table(head + [c[0] for c in TAB4_COLUMNS] + ['semantic ids vs own SPC'],
                      [(label, f'`{tok or "—"}`', f'`{llava}`', seeds_run(tab4[label]),
                       *row_cells(tab4[label], TAB4_COLUMNS), ids_cell(tok, tab4[label]['ids']))
                       for label, tok, llava in ABLATION_TAB4]), '',
             '### Tab. 5: fusion type and sub-codebook size', '',
             md_table(['row', 'tokenizer', 'm', 'seeds with results',
                       *(c[0] for c in TAB5_COLUMNS), 'semantic ids vs own SPC',
                       'sub-codes in use per used semantic code'],
                      [(label, f'`{tok}`', m or '—', seeds_run(tab5[label]),
                        *row_cells(tab5[label], TAB5_COLUMNS), ids_cell(tok, tab5[label]['ids']),
                        sub_codes[label])
                       for label, tok, m in ABLATION_TAB5]), '',
             '### The paper\'s claims, judged on the seeds', '',
             f'Computed by `unimm/apis/verdicts.py`: two rows differ when their seed means differ '
             f'by more than {K_SE:g} pooled standard errors (between seeds), else they tie; one '
             'seed decides nothing. Reconstruction claims on rFID where every run has it, else '
             'LPIPS. Usage is judged on the sub-codes in use per used semantic code: a share '
             'that falls with an unchanged count is the denominator alone.', '',
             md_table(['claim', 'paper (ImageNet scale)', 'here', 'verdict'],
                      [(c, p, e, f'**{v}**') for c, p, e, v in ablation_claims(tab4, tab5)])]
    steps = [n for n in CHAINS['ablations'] if n in stages]
    if steps:
        lines += [''] + stage_table(steps, stages)
    else:
        lines += ['', 'No step of the chain has run yet (work_dirs/shapes_reference/stages.json '
                  'records none).']
    return lines + ['', GPU_MARKERS[1]]


def report_ablations(docs):
    from unimm.apis.ablate import GPU_MARKERS
    lines = ablation_section()
    write_between_markers(os.path.join(docs, 'ablations.md'), lines, GPU_MARKERS)
    print('\n'.join(lines))


# the lent GPU machine sends back files of at most 16 MiB: larger tars go in parts
PART_BYTES = 15 * 2 ** 20


def split_file(path, part_bytes=PART_BYTES):
    """``path`` as PATH.part000, PATH.part001, ... of at most ``part_bytes`` each (removed
    and replaced) when it is larger; ``unpack`` joins them."""
    if os.path.getsize(path) <= part_bytes:
        return
    with open(path, 'rb') as src:
        for i, chunk in enumerate(iter(partial(src.read, part_bytes), b'')):
            with open(f'{path}.part{i:03d}', 'wb') as dst:
                dst.write(chunk)
    os.remove(path)


def joined_parts(files, folder):
    """``files`` with each run of X.partNNN replaced by X joined in ``folder``."""
    whole, parts = [], {}
    for path in files:
        stem, _, index = path.rpartition('.part')
        if stem and index.isdigit():
            parts.setdefault(stem, []).append(path)
        else:
            whole.append(path)
    for stem, pieces in parts.items():
        joined = os.path.join(folder, os.path.basename(stem))
        with open(joined, 'wb') as dst:
            for piece in sorted(pieces):
                with open(piece, 'rb') as src:
                    shutil.copyfileobj(src, dst)
        whole.append(joined)
    return whole


def pack(out, chain, exports, part_bytes=PART_BYTES):
    """results.tar under ``out``: stages.json and, for every step of ``chain``, its kept
    results (test JSONs, scores, the shapes-GenEval samples) and logs; NAME.tar:
    work_dirs/NAME/export for each of ``exports`` that exists (the files a GPU machine sends
    back: small, a few of them; a tar over ``part_bytes`` is split into parts)."""
    import glob
    import tarfile
    os.makedirs(out, exist_ok=True)
    names = CHAINS.get(chain, list(STEPS))
    paths = [os.path.join(STATE, 'stages.json')]
    for n in names:
        paths += glob.glob(os.path.join(STATE, n, '*.json'))
        for kept in ('metadata.jsonl', os.path.join('samples', '*.png')):
            paths += glob.glob(os.path.join(STATE, n, 'shapes_geneval', '*', kept))
        paths += glob.glob(os.path.join(STATE, f'{n}.*.log'))
        paths += [os.path.join('work_dirs', n, 'log.jsonl'),
                  os.path.join('work_dirs', f'{n}.train.log'),
                  os.path.join('work_dirs', f'{n}.log')]
    with tarfile.open(os.path.join(out, 'results.tar'), 'w') as tar:
        for path in dict.fromkeys(p for p in paths if os.path.isfile(p)):
            tar.add(path)
    for name in exports:
        if not os.path.exists(STEPS[name].output):  # e.g. a run stopped at its time limit
            print(f'pack: {export_of(name)} does not exist, left out')
            continue
        with tarfile.open(os.path.join(out, f'{name}.tar'), 'w') as tar:
            tar.add(export_of(name))
        split_file(os.path.join(out, f'{name}.tar'), part_bytes)


def unpack(files):
    """Extracts ``pack``'s tar files (split ones from their parts) here; the stages recorded
    in a packed stages.json are merged into the local one (a step recorded in both: the
    packed record)."""
    import tempfile
    state_file = os.path.join(STATE, 'stages.json')
    with tempfile.TemporaryDirectory() as folder:
        for path in joined_parts(files, folder):
            unpack_tar(path, state_file)


def unpack_tar(path, state_file):
    """Extracts one tar of ``pack``, merging a packed stages.json into ``state_file``."""
    import tarfile
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        for m in members:
            if os.path.isabs(m.name) or '..' in m.name.split('/') or not (
                    m.isfile() or m.isdir()):
                raise ValueError(f'{path}: {m.name} is not a plain path under the '
                                 'repository')
        incoming = [m for m in members if os.path.normpath(m.name) == state_file]
        tar.extractall(members=[m for m in members if m not in incoming])
        if incoming:
            stages = recorded_stages()
            stages.update(json.load(tar.extractfile(incoming[0])))
            os.makedirs(STATE, exist_ok=True)
            with open(state_file, 'w') as f:
                json.dump(stages, f, indent=1)
    print(f'unpacked {path}')


def shapes_reference(command, files=(), only=None, chain=None, out=None, exports=(),
                     parallel=4, docs='docs', rfid=False, cfg_options=()):
    """One command of tools/shapes_reference.py: 'train' (the steps of ``chain`` or all, only
    ``only`` and what they need, ``parallel`` side by side, ``cfg_options`` for every recipe),
    'evaluate' (the MLLMs' held-out tasks, printed), 'report' (docs/shapes_reference.md
    under ``docs``, or with ``chain='baselines'`` the comparison in docs/baselines.md, with
    ``chain='ablations'`` the seeded ablation section of docs/ablations.md; rFID if
    ``rfid``), 'pack' (``chain``'s results and ``exports`` into tar files under ``out``) or
    'unpack' (the tar ``files``)."""
    if command == 'train':
        train(only, parallel, cfg_options, chain)
    elif command == 'evaluate':
        print('\n'.join(mllm_section(parallel)))
    elif command == 'pack':
        pack(out, chain, exports)
    elif command == 'unpack':
        unpack(files)
    elif chain == 'baselines':
        report_baselines(docs, rfid)
    elif chain == 'ablations':
        report_ablations(docs)
    else:
        report(docs, rfid)
