"""tools/shapes_reference.py (unimm.apis.shapes_reference): the GPU reference chain runs its
steps in dependency order, records each one, and skips a step whose output exists (so a
chain spread over several sessions resumes where it stopped). Tiny step counts and LLMs
on the CPU."""
import json
import os

import pytest

import unimm.apis.shapes_reference as chain
from tests.conftest import ROOT

TINY = ['train_cfg.max_steps=2', 'train_cfg.log_interval=1', 'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0', 'log_cfg.tensorboard=False']


def recipes():
    """The steps that train a recipe."""
    return [n for n, s in chain.STEPS.items() if s.run.func is chain.train_recipe]


def prerequisites(name):
    """Every step that ``name`` needs, directly or not."""
    needs = set(chain.STEPS[name].needs)
    return needs.union(*map(prerequisites, needs))


def work_dirs_named(node):
    """The first folder under work_dirs/ of every path a config names."""
    if isinstance(node, dict):
        return set().union(*map(work_dirs_named, node.values()))
    if isinstance(node, (list, tuple)):
        return set().union(*map(work_dirs_named, node))
    return {node.split('/')[1]} if isinstance(node, str) and node.startswith('work_dirs/') \
        else set()


def parsed_options(options):
    """``k=v`` cfg options as tools/train.py reads them."""
    import argparse
    from unimm.engine.config import DictAction
    p = argparse.ArgumentParser()
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return p.parse_args(['--cfg-options', *options] if options else []).cfg_options


def test_every_recipe_is_a_step_and_every_prerequisite_a_step():
    assert all(set(step.needs) <= set(chain.STEPS) for step in chain.STEPS.values())
    files = {os.path.join(folder, f[:-3]) if folder else f[:-3]
             for folder in ('', 'ablations')
             for f in os.listdir(os.path.join(ROOT, chain.RECIPES, folder)) if f.endswith('.py')}
    # every recipe is a step's, every recipe step has its file
    assert {chain.STEPS[n].recipe for n in recipes()} == files


def test_the_reference_chain_evaluates_each_mllm_as_a_step_once_it_is_trained(
        tmp_path, monkeypatch):
    """So ``train --chain reference`` evaluates a model beside the trainings still running
    and keeps the results where ``report`` reads them."""
    monkeypatch.chdir(tmp_path)  # nothing done yet
    tasks = {n: ['vqa'] for n in chain.UNDERSTANDING}
    for n in chain.GENERATION:
        tasks.setdefault(n, []).extend(chain.GENEVAL_TASKS)
    for name, names in tasks.items():
        for task in names:
            step = chain.STEPS[f'{name}.{task}']
            assert f'{name}.{task}' in chain.CHAINS['reference']
            assert step.needs == (name,) and step.output == chain.result_path(name, task)
    assert chain.to_run(['unified_flat64.vqa'], 'reference') == [
        'teacher_flat64', 'spc_flat64', 'sghc_flat64', 'reference_llama', 't2i_flat64_tokens',
        'unified_flat64', 'unified_flat64.vqa']


def test_every_folder_a_recipe_reads_is_made_by_one_of_its_prerequisites():
    """With each step's own cfg options: a seeded ablation step reads its own seed's
    exports, made by its own prerequisites."""
    from unimm.engine.config import load_config
    for name in recipes():
        step = chain.STEPS[name]
        cfg = load_config(os.path.join(ROOT, chain.recipe_path(step.recipe)),
                          parsed_options(step.options))
        read = work_dirs_named({k: v for k, v in cfg.to_dict().items()
                                if k != 'work_dir' and not k.startswith('_')})
        if name == 't2i_flat64':  # tools/pretokenize.py reads its _source_dataset
            read.discard('t2i_flat64_tokens')
        assert read <= prerequisites(name), name


@pytest.mark.slow
def test_chain_runs_in_order_records_steps_skips_finished_ones_redoes_interrupted_ones(
        chain_folder, tmp_path, monkeypatch, capsys):
    """The tokenizer chain up to sghc_flat64, a reference LLM, the pre-tokenised pairs
    (an earlier run was interrupted while writing them) and t2i_flat64, run twice."""
    from unimm.datasets.t2i import PretokenizedT2IShards
    tokens = tmp_path / 'work_dirs' / 't2i_flat64_tokens'
    leftover = tmp_path / 'work_dirs' / 't2i_flat64_tokens.tmp'  # an interrupted run's
    leftover.mkdir(parents=True)
    (leftover / 'shard-000000.tar').write_text('cut short')
    steps = ['teacher_flat64', 'spc_flat64', 'sghc_flat64', 'reference_llama',
             't2i_flat64_tokens', 't2i_flat64']

    def train():
        chain.shapes_reference('train', only=steps,
                               cfg_options=[*TINY, '_source_dataset.length=6'])
        return capsys.readouterr().out

    printed = [line.split(':')[0] for line in train().splitlines()]
    assert sorted(printed) == sorted(steps)
    for name in steps:
        assert all(printed.index(n) < printed.index(name) for n in chain.STEPS[name].needs)
    assert not leftover.exists()
    samples = list(PretokenizedT2IShards(urls=str(tokens)))
    assert len(samples) == 6 and all(s['visual_ids'].shape == (64,) for s in samples)
    assert (tmp_path / 'work_dirs' / 'reference_llama' / 'config.json').is_file()
    assert json.loads((tmp_path / 'work_dirs' / 'reference_llama' / 'config.json')
                      .read_text())['hidden_size'] == 32
    weights = tmp_path / 'work_dirs' / 't2i_flat64' / 'export' / 'model.safetensors'
    stages = json.loads((tmp_path / chain.STATE / 'stages.json').read_text())
    assert set(stages) == set(steps)
    assert all(s['wall_s'] > 0 and s['device'] == 'CPU' for s in stages.values())
    mtimes = [p.stat().st_mtime for p in (weights, tokens)]
    assert train() == ''  # every output exists: nothing redone
    assert [p.stat().st_mtime for p in (weights, tokens)] == mtimes
    assert json.loads((tmp_path / chain.STATE / 'stages.json').read_text()) == stages


def test_a_step_starts_once_its_prerequisites_finish_and_a_failure_stops_the_chain(
        tmp_path, monkeypatch):
    """Fake steps: 'c' (needs the quick 'b') runs while the slow 'a' still runs; 'e' needs
    the failing 'd' and never starts; the failure is raised after 'a' has finished."""
    import threading
    monkeypatch.chdir(tmp_path)
    log, a_may_finish = [], threading.Event()

    def step(name, needs=(), fail=False):
        def run(options):
            log.append(f'start {name}')
            if name == 'a':
                assert a_may_finish.wait(10)
            if name == 'c':
                a_may_finish.set()
            if fail:
                raise RuntimeError(f'{name} failed')
            (tmp_path / name).write_text('done')
            log.append(f'end {name}')
        return chain.Step(needs, run, str(tmp_path / name))

    monkeypatch.setattr(chain, 'STEPS', {
        'a': step('a'), 'b': step('b'), 'c': step('c', ('b',)), 'd': step('d', ('a',), True),
        'e': step('e', ('d',))})
    with pytest.raises(RuntimeError, match='d failed'):
        chain.shapes_reference('train', parallel=2)
    assert log.index('start c') < log.index('end a') < log.index('start d')
    assert 'start e' not in log
    stages = json.loads((tmp_path / chain.STATE / 'stages.json').read_text())
    assert set(stages) == {'a', 'b', 'c'}


def test_edge_error_puts_an_error_on_a_colour_edge_in_the_edge_share():
    """A red square on black, reconstructed exactly except one pixel on its border and one
    pixel inside it: half the squared error lies on the edges."""
    import torch

    class Shifted:
        def reconstruct(self, images):
            out = images.clone()
            out[0, :, 4, 4] -= 0.2   # on the square's border
            out[0, :, 8, 8] -= 0.2   # inside the square, 3 pixels from any edge
            return out
    images = -torch.ones(1, 3, 16, 16)
    images[0, 0, 4:12, 4:12] = 1.0
    result = chain.edge_error(Shifted(), images)
    assert abs(result['edge_error_share'] - 0.5) < 1e-6
    border = 8 * 8 - 6 * 6 + 10 * 10 - 8 * 8  # the square's outer ring and the ring outside it
    assert abs(result['edge_pixels'] - border / 256) < 1e-6
    # only the red channel changes (green and blue are clamped at -1): 0.1^2 / 3 per pixel
    off_edges = 0.01 / 3 / (256 - border)
    assert abs(result['psnr_off_edges'] + 10 * torch.log10(torch.tensor(off_edges)).item()) < 1e-4


def test_each_ablation_seed_trains_from_its_own_seeds_exports(monkeypatch):
    """Every stage-2 row of a seed needs that seed's stage-1 SPC and starts from its export;
    every LLaVA row reads its seed's tokenizer; each step trains into its own work dir with
    its seed, and its evaluations test its own export."""
    calls = []
    monkeypatch.setattr(chain, 'run_tool', lambda log, script, args: calls.append(args))
    for seed in chain.SEEDS:
        for name, (_, spc) in chain.STAGE2.items():
            step = chain.STEPS[chain.seeded(name, seed)]
            assert step.needs == (chain.seeded(spc, seed),)
            assert f'model.init_from=work_dirs/{chain.seeded(spc, seed)}/export' in step.options
            assert set(chain.STEPS[f'{chain.seeded(name, seed)}.recon'].needs) == {
                chain.seeded(name, seed)}
            # the semantic-id check of a SemHiTok row: the row and its own seed's SPC
            ids = chain.STEPS.get(f'{chain.seeded(name, seed)}.ids')
            assert (ids is not None) == (name != 'joint_from_spc_textured128'), name
            if ids:
                assert set(ids.needs) == {chain.seeded(name, seed), chain.seeded(spc, seed)}
                assert ids.output == chain.result_path(chain.seeded(name, seed), 'ids')
        # the probe of each Tab. 4 tokenizer row, on its own seed's export
        # (the teacher's continuous features: once, under its first seed's name)
        for _, tokenizer, _ in chain.ABLATION_TAB4:
            name = f'{chain.seeded(tokenizer, seed)}.probe'
            if tokenizer == chain.TEACHER:
                assert (name in chain.STEPS) == (seed == chain.SEEDS[0])
                if seed != chain.SEEDS[0]:
                    continue
            probe = chain.STEPS[name]
            assert probe.needs == ((tokenizer,) if tokenizer == chain.TEACHER
                                   else (chain.seeded(tokenizer, seed),))
            assert probe.output == chain.result_path(chain.seeded(tokenizer, seed), 'probe')
            assert name in chain.CHAINS['ablations']
        for name, tokenizer in chain.LLAVA.items():
            step = chain.STEPS[chain.seeded(name, seed)]
            assert set(step.needs) == {chain.seeded(tokenizer, seed), 'reference_llama'}
            assert ('model.vision.tokenizer=work_dirs/'
                    f'{chain.seeded(tokenizer, seed)}/export') in step.options
    # every seeded step: its seed, and prerequisites of its own seed or unseeded
    for name in chain.CHAINS['ablations']:
        seed = name.split('.s')[1].split('.')[0]
        for need in prerequisites(name):
            assert '.s' not in need or need.split('.s')[1].split('.')[0] == seed, (name, need)
        if chain.STEPS[name].recipe:
            assert chain.STEPS[name].options[0] == f'randomness.seed={seed}'
    chain.STEPS['sghc_m8_textured128.s2'].run(['train_cfg.max_steps=2'])
    assert calls[-1] == [os.path.join(chain.RECIPES, 'ablations', 'sghc_m8_textured128.py'),
                         '--work-dir', os.path.join('work_dirs', 'sghc_m8_textured128.s2'),
                         '--resume', 'auto', '--cfg-options', 'randomness.seed=2',
                         'model.init_from=work_dirs/spc_textured128.s2/export',
                         'train_cfg.max_steps=2']
    monkeypatch.setattr(chain, 'STATE', '/nonexistent/state')  # no kept results
    with pytest.raises(FileNotFoundError):  # the fake tool wrote no results to read
        chain.STEPS['sghc_m8_textured128.s2.recon'].run([])
    test = calls[-1]
    assert test[:4] == [chain.recipe_path('ablations/sghc_m8_textured128'),
                        chain.export_of('sghc_m8_textured128.s2'), '--task', 'recon']
    assert test[test.index('--cfg-options') + 1:][:3] == [
        'randomness.seed=2', 'model.init_from=work_dirs/spc_textured128.s2/export',
        f'test_cfg.recon.dataset.length={chain.RECON_IMAGES}']


def test_probe_and_ids_steps_measure_their_own_seeds_exports_and_keep_a_json(
        tmp_path, monkeypatch):
    """The .probe step runs ablate.run_probe on the row's TokenizerFeatures with ablate's
    probe settings on textured scenes; the .ids step compares the row's export with its
    own seed's SPC on held-out textured images; each keeps its result where the report
    (and pack) read it."""
    import torch
    import unimm.apis.ablate as ablate
    import unimm.models.base as base
    import unimm.models.mllm.features as features
    monkeypatch.chdir(tmp_path)
    probed, exports = [], []
    monkeypatch.setattr(features, 'TokenizerFeatures',
                        lambda export: exports.append(export) or torch.nn.Identity())
    monkeypatch.setattr(ablate, 'run_probe', lambda vision, cfg: probed.append(cfg) or dict(
        accuracy=0.5))
    chain.STEPS['sghc_textured128.s1.probe'].run([])
    with open(chain.result_path('sghc_textured128.s1', 'probe')) as f:
        kept = json.load(f)
    assert exports == [chain.export_of('sghc_textured128.s1')]
    assert kept['accuracy'] == 0.5 and kept['settings'] == probed[0] == chain.probe_settings()
    assert probed[0]['train']['texture'] and probed[0]['test']['resolution'] == 128
    assert probed[0]['hidden'] == ablate.settings(quick=False)['probe']['hidden']
    # the teacher row: the continuous features its LLaVA reference recipe reads
    import unimm.registry as registry
    (tmp_path / 'registry_configs').symlink_to(os.path.join(ROOT, 'registry_configs'))
    built = []
    monkeypatch.setattr(registry.MODELS, 'build', lambda cfg: built.append(cfg) or
                        torch.nn.Identity())
    chain.STEPS[f'{chain.seeded(chain.TEACHER, 0)}.probe'].run([])
    assert built[0]['type'] == 'ContinuousFeatures'
    assert built[0]['encoder']['pretrained'] == chain.export_of(chain.TEACHER)
    assert os.path.exists(chain.result_path(chain.seeded(chain.TEACHER, 0), 'probe'))
    loaded, compared = [], []
    monkeypatch.setattr(base.PretrainedMixin, 'from_pretrained',
                        lambda path: loaded.append(path) or torch.nn.Identity())
    monkeypatch.setattr(chain, 'held_out_images', lambda world, n: torch.zeros(n, 3, 2, 2))
    monkeypatch.setattr(chain, 'semantic_ids_identical',
                        lambda model, spc, images: compared.append(len(images)) or 1.0)
    chain.STEPS['sghc_m8_textured128.s2.ids'].run([])
    assert loaded == [chain.export_of('sghc_m8_textured128.s2'),
                      chain.export_of('spc_textured128.s2')]
    assert compared == [chain.IDS_IMAGES]
    with open(chain.result_path('sghc_m8_textured128.s2', 'ids')) as f:
        assert json.load(f)['semantic_ids_identical'] == 1.0


def write_seed_results(name, task, rows):
    """Hand-made kept results of ablation row ``name``: one dict per seed."""
    for seed, result in zip(chain.SEEDS, rows):
        path = chain.result_path(chain.seeded(name, seed), task)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(result, f)


def test_ablation_report_groups_seeds_into_rows_and_judges_each_claim(tmp_path, monkeypatch):
    """Hand-made per-seed results (no training): the rows hold mean ± sd over the seeds
    present, rows without results say 'not run', each claim's verdict follows the seeds,
    and only the GPU block of docs/ablations.md is rewritten."""
    from unimm.apis.ablate import BEGIN, END, GPU_MARKERS
    monkeypatch.chdir(tmp_path)
    recon = lambda lpips, sub, ids: [  # noqa: E731  three seeds, a small spread
        dict(psnr=20.0 + d, ssim=0.8, lpips=lpips + d / 100, usage_subcodes=sub + d / 100,
             distinct_ids=ids + d, usage_global=0.1, usage_semantic=0.7)
        for d in (-1, 0, 1)]
    write_seed_results('sghc_textured128', 'recon', recon(0.10, 1 / 6, 2000))
    write_seed_results('spc_only_decoder_textured128', 'recon', recon(0.30, 0.5, 700))
    write_seed_results('joint_from_spc_textured128', 'recon', recon(0.20, 0.5, 700))
    # the same 2 sub-codes in use per used semantic code at every m: the denominator alone
    write_seed_results('sghc_m8_textured128', 'recon', recon(0.12, 2 / 8, 2000))
    write_seed_results('sghc_m16_textured128', 'recon', recon(0.08, 2 / 16, 2000))
    vqa = lambda acc: [dict(accuracy=acc + d) for d in (-0.01, 0, 0.01)]  # noqa: E731
    write_seed_results('llava_sghc_textured128', 'vqa', vqa(0.80))
    write_seed_results('llava_spc_textured128', 'vqa', vqa(0.79))
    write_seed_results('llava_joint_from_spc_textured128', 'vqa', vqa(0.79)[:1])  # one seed
    # the probe: SGHC well below its SPC; semantic ids: SGHC's kept, m = 8's changed at a seed
    write_seed_results('sghc_textured128', 'probe', vqa(0.60))
    write_seed_results('spc_only_decoder_textured128', 'probe', vqa(0.70))
    write_seed_results('sghc_textured128', 'ids', [dict(semantic_ids_identical=1.0)] * 3)
    write_seed_results('sghc_m8_textured128', 'ids', [dict(semantic_ids_identical=v)
                                                      for v in (1.0, 0.9975, 1.0)])
    os.makedirs(chain.STATE, exist_ok=True)
    with open(os.path.join(chain.STATE, 'stages.json'), 'w') as f:
        json.dump({'sghc_textured128.s0': dict(wall_s=330.0, device='NVIDIA H100',
                                               date='2026-12-08', concurrent=4),
                   'sghc_flat64': dict(wall_s=1.0, device='x', date='x', concurrent=1)}, f)
    os.makedirs('docs')
    cpu = '# Ablations\n\n## Tab. 4 (CPU, one run per row)\n\n| a CPU row |\n\n'
    hand = f'{BEGIN}\nmy reading\n{END}\n'
    with open('docs/ablations.md', 'w') as f:
        f.write(f'{cpu}{GPU_MARKERS[0]}\nold\n{GPU_MARKERS[1]}\n\n## Interpretation\n\n{hand}')
    chain.shapes_reference('report', chain='ablations', docs='docs')
    text = open('docs/ablations.md').read()
    assert text.startswith(cpu) and text.endswith(hand) and '\nold\n' not in text
    cells = {line.split(' | ')[0][2:]: line.split(' | ') for line in text.splitlines()
             if line.startswith('| ')}
    assert cells['+ SGHC (SemHiTok)'][3:7] == ['recon 3, probe 3, ids 3, vqa 3',
                                                '20.00 ± 1.00 (3)', '0.800 ± 0.000 (3)',
                                                '0.100 ± 0.010 (3)']
    assert cells['+ SGHC (SemHiTok)'][11] == '0.800 ± 0.010 (3)'  # VQA
    assert cells['+ SGHC (SemHiTok)'][12] == '—'  # no POPE results
    assert cells['+ SGHC (SemHiTok)'][14:16] == ['0.600 ± 0.010 (3)', 'identical (3) |']
    assert cells['SPC, teacher init'][14:16] == ['0.700 ± 0.010 (3)', '— |']  # ids not run
    assert cells['+ joint texture training from the SPC (MUSE-VL)'][14:16] == ['—', 'n/a |']
    assert cells["reference: the teacher's continuous features"][15] == 'n/a |'
    assert cells['channel concat, m = 8'][-2] == 'differs (3; lowest share 0.9975)'
    assert cells['channel concat, m = 12'][-2] == 'identical (3)'
    for row in ('SPC, random-init encoder (distilled from the teacher)',
                "reference: the teacher's continuous features", 'length concat'):
        assert cells[row][3] == 'not run'
    assert cells['channel concat, m = 8'][-1].startswith('2.0 ± 0.1 (3)')
    verdicts = {k: c[-1].rstrip(' |') for k, c in cells.items() if len(c) == 4}
    assert verdicts['SGHC keeps the understanding of its SPC (VQA exact match)'] == \
        '**reproduced**'
    assert verdicts['joint texture training costs understanding (VQA exact match)'] == \
        '**inconclusive**'  # one joint seed decides nothing
    assert verdicts['SGHC keeps the understanding of its SPC (POPE accuracy)'] == '**not run**'
    assert verdicts['SGHC keeps the understanding of its SPC (probe accuracy)'] == \
        '**not reproduced**'
    assert verdicts['SGHC reconstructs better than the SPC alone and than joint training'] == \
        '**reproduced**'  # LPIPS: no run has rFID
    assert 'lpips SGHC' in cells['SGHC reconstructs better than the SPC alone and than joint '
                                 'training'][2]
    assert verdicts['a larger sub-codebook reconstructs better'] == '**reproduced**'
    assert verdicts['codebook usage falls as the sub-codebook grows'] == '**inconclusive**'
    assert 'denominator alone' in cells['codebook usage falls as the sub-codebook grows'][2]
    assert verdicts['channel concat beats length concat and texture-only'] == '**not run**'
    # the wall time of the chain's steps, not of other chains
    assert '| sghc_textured128.s0 | NVIDIA H100 | 2026-12-08 | 5.5 min | 4 |' in text
    assert '| sghc_flat64 |' not in text


def test_each_reference_llm_is_made_at_its_own_size(monkeypatch, tmp_path):
    """The scaling chain's LLM gets its own size; the reference LLM ``LM_SIZE``."""
    calls = {}

    def fake_tool(name, script, args):
        calls[name] = args
        out = args[args.index('--out') + 1]
        os.makedirs(out)
    monkeypatch.setattr(chain, 'run_tool', fake_tool)
    monkeypatch.chdir(tmp_path)
    for name in ('reference_llama', 'reference_llama_512'):
        chain.STEPS[name].run(())
        assert os.path.isdir(os.path.join('work_dirs', name))
    size = lambda args: args[args.index('--hidden-size'):args.index('--extra-text')]  # noqa: E731
    assert size(calls['reference_llama']) == chain.LM_SIZE
    assert size(calls['reference_llama_512']) == ['--hidden-size', '512', '--layers', '8',
                                                  '--heads', '8']
    assert chain.CHAINS['scaling'][-1] == 't2i_flat64_llm512.shapes_geneval'
    assert not set(chain.CHAINS['scaling']) & set(chain.CHAINS['reference'])


def test_the_unified_gap_has_a_paired_interval_from_the_saved_samples(tmp_path, monkeypatch):
    """geneval_by_prompt scores the samples an evaluation saved (GenEval's layout) again:
    rendered correct scenes pass, blank ones fail; the paired bootstrap is exact where every
    prompt differs by the same amount, brackets the observed gap otherwise, and refuses
    runs of different prompts; the gap line carries the interval; pack takes the samples."""
    import tarfile

    import numpy as np
    import torch
    from unimm.datasets.shapes import render, sample_geneval_prompts, scene_from_prompt
    from unimm.datasets.transforms import pil_to_tensor
    from unimm.evaluation.geneval import save_prompt_samples
    monkeypatch.chdir(tmp_path)
    specs, rng = sample_geneval_prompts(0, 2), np.random.default_rng(0)
    scenes = [torch.stack([pil_to_tensor(render(scene_from_prompt(s, rng), 64))
                           for _ in range(2)]) for s in specs]
    blank = -torch.ones(1, 3, 64, 64)
    for name, failed in (('t2i_flat64', []), ('unified_flat64', range(0, len(specs), 2)),
                         ('other', range(len(specs)))):
        for p, (spec, images) in enumerate(zip(specs, scenes)):
            save_prompt_samples(os.path.join(chain.STATE, name, 'shapes_geneval'), p,
                                json.dumps(spec), torch.cat([blank, images[1:]])
                                if p in failed else images)
    single, unified, other = map(chain.geneval_by_prompt, ('t2i_flat64', 'unified_flat64',
                                                           'other'))
    assert [t for t, _ in single] == [s['tag'] for s in specs]
    assert [x for _, x in single] == [1.0] * len(specs)
    assert [x for _, x in unified] == [0.5 if p % 2 == 0 else 1.0 for p in range(len(specs))]
    assert chain.paired_interval(other, single) == pytest.approx((-0.5, -0.5))
    assert chain.paired_interval(single, single) == (0, 0)
    low, high = chain.paired_interval(unified, single)
    observed = np.mean([x - y for (_, x), (_, y) in zip(unified, single)])
    assert low < observed < high <= 0
    with pytest.raises(ValueError, match='different prompts'):
        chain.paired_interval(unified[1:], single[:-1])
    assert chain.geneval_by_prompt('never_evaluated') is None
    line, = chain.gap_line('shapes-GenEval', {'unified_flat64': 0.2, 't2i_flat64': 0.25},
                           't2i_flat64', {'unified_flat64': unified, 't2i_flat64': single})
    assert line.endswith(f'(-0.050; 95 % interval {low:+.3f} to {high:+.3f}, a paired '
                         f'bootstrap over the {len(specs)} prompts, resampled within each '
                         'category)')
    assert chain.gap_line('VQA', {'unified_flat64': 0.7, 'llava_sghc_flat64': 0.6},
                          'llava_sghc_flat64') == [
        '- VQA: unified_flat64 0.700 against llava_sghc_flat64 0.600 (+0.100)']
    chain.pack('out', 'reference', [])
    packed = tarfile.open('out/results.tar').getnames()
    assert os.path.join(chain.STATE, 'unified_flat64', 'shapes_geneval', '00000', 'samples',
                        '0001.png') in packed
    assert os.path.join(chain.STATE, 't2i_flat64', 'shapes_geneval', '00003',
                        'metadata.jsonl') in packed


def test_the_reference_report_times_only_the_reference_chains_steps(tmp_path, monkeypatch):
    """stages.json also records the other chains' steps; the results page of the reference
    chain lists only its own, in the chain's order."""
    monkeypatch.chdir(tmp_path)
    record = dict(device='NVIDIA H100 80GB HBM3', date='2026-12-07', concurrent=1)
    os.makedirs(chain.STATE)
    with open(os.path.join(chain.STATE, 'stages.json'), 'w') as f:
        json.dump({'pixel_vq_flat64': dict(record, wall_s=282.0),
                   'spc_flat64': dict(record, wall_s=71.0),
                   'teacher_flat64': dict(record, wall_s=122.0)}, f)
    chain.report('docs', rfid=False)
    rows = [line.split(' | ')[0] for line in
            (tmp_path / 'docs' / 'shapes_reference.md').read_text().splitlines()
            if line.startswith('| ') and 'H100' in line]
    assert rows == ['| teacher_flat64', '| spc_flat64']


@pytest.mark.slow
def test_a_step_stopped_by_sigterm_and_resumed_records_the_sum_of_its_runs(tmp_path):
    """``timeout`` signals the chain and its steps' tools: the chain keeps how long the
    running step had run (interrupted.json) and records nothing for it; resumed, the step
    records both runs' time and the note is removed."""
    import signal
    import subprocess
    import sys
    import time
    script = tmp_path / 'chain.py'
    script.write_text(
        'import subprocess, sys\n'
        'import unimm.apis.shapes_reference as chain\n'
        'def slow(options):\n'
        "    open('started', 'w').close()\n"
        "    if subprocess.call(['sleep', sys.argv[1]]):\n"
        "        raise RuntimeError('sleep was stopped')\n"
        "    open('slow.done', 'w').close()\n"
        "chain.STEPS = {'slow': chain.Step((), slow, 'slow.done')}\n"
        'chain.train(None, 1, ())\n')
    env = dict(os.environ, PYTHONPATH=ROOT)
    first = subprocess.Popen([sys.executable, str(script), '60'], cwd=tmp_path, env=env,
                             start_new_session=True)
    deadline = time.time() + 120
    while not (tmp_path / 'started').exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(2)
    os.killpg(first.pid, signal.SIGTERM)  # as timeout does: the whole process group
    assert first.wait(60) == 128 + signal.SIGTERM
    state = tmp_path / chain.STATE
    before = json.loads((state / 'interrupted.json').read_text())['slow']
    assert 2 <= before < 30
    assert not (state / 'stages.json').exists()  # no step finished
    subprocess.run([sys.executable, str(script), '1'], cwd=tmp_path, env=env, check=True)
    wall = json.loads((state / 'stages.json').read_text())['slow']['wall_s']
    assert before + 0.9 <= wall < before + 30  # the second run slept 1 s (wall_s: 0.1 s)
    assert not (state / 'interrupted.json').exists()
