"""Shapes-world versions of the paper's ablations, Tab. 4 (semantic-encoder init, joint
texture training, SGHC: reconstruction vs understanding) and Tab. 5 (fusion type,
sub-codebook size: reconstruction and codebook usage), behind tools/ablate.py. Every row
is a demo config plus --cfg-options, trained with `unimm.apis.train.train` and scored with
`unimm.apis.test.evaluate` on its recon task and with the shapes probe (understanding,
through TokenizerFeatures); docs/ablations.md is written from the results JSON, verdicts
on the paper's claims included.

Rows with the same resolved config train once; a rerun skips what results.json holds and a
killed training resumes from its last checkpoint. Needs the demo teacher."""
import datetime
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass

import torch
from mmengine.config import Config

from unimm.apis.test import evaluate
from unimm.apis.train import train
from unimm.apis.verdicts import verdict
from unimm.engine.config import load_config
from unimm.models.base import load_unimm_folder
from unimm.registry import DATASETS, METRICS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEMO, BASE = 'registry_configs/demo/', 'registry_configs/demo/baselines/'
TEACHER = 'work_dirs/shapes_siglip/export'  # the teacher path the demo configs name
SPC_EXPORT = 'work_dirs/spc_shapes/export'  # the stage-1 export the SemHiTok rows name


@dataclass(frozen=True)
class Row:
    """One table row: a config and its --cfg-options; ``spc`` names the stage-1 run (a
    key of STAGE1) that the config's ``work_dirs/spc_shapes/export`` stands for."""
    label: str
    config: str
    options: tuple = ()
    spc: str = 'teacher'


# Tab. 4's baseline: a randomly initialised semantic encoder, trained in stage 1 toward the
# frozen teacher (the config's default teacher: the demo teacher folder)
STAGE1 = {'teacher': Row('SPC, teacher init', DEMO + 'spc_shapes.py'),
          'random': Row('SPC, random init', DEMO + 'spc_shapes.py',
                        (('model.semantic_encoder.init', 'random'),
                         ('model.train_semantic_encoder', True)))}
TABLES = {
    '4': (Row('SPC, random-init semantic encoder', BASE + 'semhitok_fusion_semantic_shapes.py',
              spc='random'),
          Row('SPC, teacher init', BASE + 'semhitok_fusion_semantic_shapes.py'),
          Row('+ joint texture training (VILA-U / MUSE-VL)', BASE + 'joint_shapes.py'),
          Row('+ SGHC (SemHiTok)', BASE + 'semhitok_fusion_channel_shapes.py'),
          Row('context: pixel VQ, no teacher (LlamaGen)', BASE + 'pixel_vq_shapes.py')),
    '5': (Row('texture only (w/o sem)', BASE + 'semhitok_fusion_texture_shapes.py'),
          Row('semantic only (no texture branch)', BASE + 'semhitok_fusion_semantic_shapes.py'),
          Row('length concat', BASE + 'semhitok_fusion_length_shapes.py'),
          Row('channel concat, m = 8', BASE + 'semhitok_subcodes_8_shapes.py'),
          Row('channel concat, m = 12', BASE + 'semhitok_subcodes_12_shapes.py'),
          Row('channel concat, m = 16', BASE + 'semhitok_subcodes_16_shapes.py')),
}
UNDERSTANDING_TABLES = {'4'}  # tables whose rows also get the probe


def settings(quick):
    """Steps and evaluation sizes of a mode: the same for every row."""
    if quick:
        return dict(steps=2, stage1_steps=2, batch_size=8, recon_images=16, probe=dict(
            train=dict(type='ShapesCaptionDataset', start=0, length=64),
            test=dict(type='ShapesCaptionDataset', start=100000, length=32),
            hidden=16, epochs=2, seeds=[0]))
    return dict(steps=400, stage1_steps=None, batch_size=None, recon_images=500, probe=dict(
        train=dict(type='ShapesCaptionDataset', start=0, length=4000),
        test=dict(type='ShapesCaptionDataset', start=100000, length=1000),
        hidden=64, epochs=40, seeds=[0, 1]))


# ------------------------------------------------------------------ configs and runs
def plain(obj):
    """``obj`` as it reads back from JSON (tuples -> lists), so settings compare equal."""
    return json.loads(json.dumps(obj, default=str))


def replace_paths(node, mapping):
    """The config tree with every string equal to a key of ``mapping`` replaced."""
    if isinstance(node, dict):
        return {k: replace_paths(v, mapping) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(replace_paths(v, mapping) for v in node)
    return mapping.get(node, node) if isinstance(node, str) else node


def resolve(row, steps, mode, paths):
    """(plain config dict, run key): the row's config with its options, ``steps``, the
    mode's run settings and ``paths`` substituted; the key hashes all but test_cfg, so
    rows that train the same thing share one run."""
    options = dict(row.options)
    if steps:
        options['train_cfg.max_steps'] = steps
    cfg = replace_paths(load_config(os.path.join(ROOT, row.config), options).to_dict(), paths)
    cfg['log_cfg'] = dict(tensorboard=False)
    cfg['checkpoint'] = dict(cfg.get('checkpoint') or {}, interval=100)
    if mode['batch_size']:
        cfg['train_dataloader'].update(batch_size=mode['batch_size'], num_workers=0)
    recon = cfg['test_cfg']['recon']
    recon.update(lpips=None, fid=False, batch_size=min(recon['batch_size'], mode['recon_images']))
    recon['dataset']['length'] = mode['recon_images']
    trained = {k: v for k, v in cfg.items() if k != 'test_cfg'}
    digest = hashlib.sha1(json.dumps(trained, sort_keys=True, default=str).encode())
    return cfg, digest.hexdigest()[:10]


class Ablation:
    """Trains and evaluates rows into ``work_dir/results.json`` (saved after every step)."""

    def __init__(self, work_dir, teacher, quick):
        self.work_dir = os.path.abspath(work_dir)
        self.mode = settings(quick)
        self.teacher = os.path.abspath(teacher)
        self.path = os.path.join(self.work_dir, 'results.json')
        self.results = {'runs': {}, 'tables': {}, 'reference': {}}
        if os.path.isfile(self.path):
            with open(self.path) as f:
                self.results = json.load(f)

    def save(self):
        os.makedirs(self.work_dir, exist_ok=True)
        with open(self.path + '.tmp', 'w') as f:
            json.dump(self.results, f, indent=2)
        os.replace(self.path + '.tmp', self.path)

    def _timed(self, entry, phase, fn, *args):
        start = time.time()
        out = fn(*args)
        entry['seconds'][phase] = entry['seconds'].get(phase, 0.0) + time.time() - start
        return out

    def run(self, row, stage1=False):
        """Train (or resume, or skip) the row; evaluate what its entry lacks. Its key."""
        paths = {TEACHER: self.teacher}
        if not stage1:
            paths[SPC_EXPORT] = self.export(self.run(STAGE1[row.spc], stage1=True))
        steps = self.mode['stage1_steps'] if stage1 else self.mode['steps']
        cfg, key = resolve(row, steps, self.mode, paths)
        run_dir = os.path.join(self.work_dir, 'runs', key)
        entry = self.results['runs'].setdefault(key, dict(
            config=row.config, options=dict(row.options), steps=cfg['train_cfg']['max_steps'],
            seconds={}))
        os.makedirs(run_dir, exist_ok=True)
        cfg_file = os.path.join(run_dir, 'ablation_config.py')
        Config(cfg).dump(cfg_file)  # rewritten each time: test_cfg may have changed
        if not os.path.isfile(os.path.join(self.export(key), 'model.safetensors')):
            print(f'[ablate] training {key} ({row.label})', flush=True)
            self._timed(entry, 'train', train, cfg_file, run_dir, 'auto')
            for stale in ('recon', 'recon_settings', 'probe', 'probe_settings'):
                entry.pop(stale, None)
            self.save()
        if stage1:
            return key
        recon_settings = plain(cfg['test_cfg']['recon'])
        if entry.get('recon_settings') != recon_settings:
            entry['recon'] = self._timed(entry, 'recon', evaluate, cfg_file, self.export(key),
                                         'recon', os.path.join(run_dir, 'eval'))
            entry['recon_settings'] = recon_settings
            entry.update(tokenizer_facts(self.export(key), cfg['model'].get('init_from'),
                                         cfg['test_cfg']['recon']),
                         fusion=cfg['model'].get('fusion'))  # the recipe's (SemHiTok's)
            self.save()
        return key

    def probe(self, key):
        """The shapes probe on the run's ``TokenizerFeatures`` (skipped when done)."""
        entry = self.results['runs'][key]
        if entry.get('probe_settings') != plain(self.mode['probe']):
            from unimm.models.mllm.features import TokenizerFeatures
            print(f'[ablate] probing {key}', flush=True)
            entry['probe'] = self._timed(entry, 'probe', run_probe,
                                         TokenizerFeatures(self.export(key)), self.mode['probe'])
            entry['probe_settings'] = plain(self.mode['probe'])
            self.save()

    def reference(self):
        """The probe on the teacher's continuous features: understanding without a VQ."""
        ref = self.results['reference']
        if ref.get('probe_settings') != plain(self.mode['probe']):
            from unimm.models.mllm.features import ContinuousFeatures
            vision = ContinuousFeatures(dict(type='SemanticEncoder', pretrained=self.teacher))
            start = time.time()
            ref.update(probe=run_probe(vision, self.mode['probe']),
                       probe_settings=plain(self.mode['probe']),
                       seconds={'probe': time.time() - start})
            self.save()

    def export(self, key):
        return os.path.join(self.work_dir, 'runs', key, 'export')

    def table(self, name):
        rows = []
        for row in TABLES[name]:
            key = self.run(row)
            if name in UNDERSTANDING_TABLES:
                self.probe(key)
            rows.append(dict(label=row.label, config=row.config, run=key))
        if name in UNDERSTANDING_TABLES:
            self.reference()
        self.results['tables'][name] = rows
        self.save()


def run_probe(vision, probe_cfg):
    return METRICS.build(dict(type='ShapesProbeEvaluator', **probe_cfg))(vision)


@torch.no_grad()
def tokenizer_facts(export, spc_export, recon_cfg):
    """The trained tokenizer's m (SemHiTok's sub-codes; else None), and whether its
    semantic ids equal those of the stage-1 export it was built on, on the recon images
    (None without a stage-1 export)."""
    model = load_unimm_folder(export, 'ablation run').eval()
    facts = dict(sub_codes=model.factorization.sub_codes if model.factorization else None,
                 semantic_ids_identical=None)
    if spc_export:
        spc = load_unimm_folder(spc_export, 'its stage-1 SPC').eval()
        loader = torch.utils.data.DataLoader(DATASETS.build(recon_cfg['dataset']),
                                             batch_size=recon_cfg['batch_size'])
        facts['semantic_ids_identical'] = True
        for batch in loader:
            semantic = model.semantic_ids(model.encode(batch['image']))
            if not torch.equal(semantic, spc.encode(batch['image'])):
                facts['semantic_ids_identical'] = False
    return facts


# ------------------------------------------------------------------ report
def num(value, digits=3):
    return '—' if value is None else f'{value:.{digits}f}'


def pct(value):
    return '—' if value is None else f'{100 * value:.1f}%'


def md_table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows])


def stem(config):
    return f'`{os.path.splitext(os.path.basename(config))[0]}`'


def same_text(ids):
    return {True: 'identical', False: 'DIFFER', None: 'n/a'}[ids]


def table4(results):
    runs, out = results['runs'], []
    for row in results['tables']['4']:
        e = runs[row['run']]
        r, p = e['recon'], e['probe']
        g = p['accuracy_by_group']
        out.append([row['label'], stem(row['config']), f'`{row["run"]}`', e['steps'],
                    num(r['psnr'], 2), num(r['ssim']), num(r.get('attribute_accuracy')),
                    num(p['accuracy']), num(p['stderr']), num(g['count']), num(g['colours']),
                    num(g['kinds']), num(g['pairs']), same_text(e['semantic_ids_identical'])])
    ref = results['reference']['probe']
    g = ref['accuracy_by_group']
    out.append(['reference: the teacher\'s continuous features (no VQ)', '—', '—', '—', '—',
                '—', '—', num(ref['accuracy']), num(ref['stderr']), num(g['count']),
                num(g['colours']), num(g['kinds']), num(g['pairs']), 'n/a'])
    return md_table(['row', 'config', 'run', 'steps', 'PSNR', 'SSIM', 'attr. acc.',
                     'probe acc.', 's.e.', 'count', 'colours', 'kinds', 'pairs',
                     'semantic ids vs its SPC'], out)


def table5(results):
    runs, out = results['runs'], []
    for row in results['tables']['5']:
        e = runs[row['run']]
        r = e['recon']
        out.append([row['label'], stem(row['config']), f'`{row["run"]}`', e['fusion'],
                    e['sub_codes'] or '—', e['steps'], num(r['psnr'], 2), num(r['ssim']),
                    num(r.get('attribute_accuracy')), pct(r['usage_global']),
                    pct(r.get('usage_subcodes')), pct(r.get('usage_semantic')),
                    same_text(e['semantic_ids_identical'])])
    return md_table(['row', 'config', 'run', 'fusion', 'm', 'steps', 'PSNR', 'SSIM',
                     'attr. acc.', 'usage (global)', 'usage (sub-codes)', 'usage (semantic)',
                     'semantic ids vs its SPC'], out)


# ------------------------------------------------------------------ verdicts
# What the paper reports for each of its claims (shared with the seeded GPU report of
# unimm.apis.shapes_reference)
PAPER = {
    'kept': 'Tab. 4: understanding kept (GQA 58.8 / POPE 83.2 / SEED 58.7 vs 58.2 / 83.1 / 57.4 '
            'for SPC)',
    'joint': 'Tab. 4: POPE 83.1 -> 77.3, SEED 57.4 -> 56.7 when texture is trained into the '
             'SPC jointly',
    'init': 'Tab. 4: GQA 56.7 -> 58.2, POPE 80.4 -> 83.1',
    'sghc_recon': 'Tab. 4: rFID 1.24 vs 2.73 (SPC) and 2.10 (joint)',
    'fusion': 'Tab. 5: rFID 1.26 (channel) vs 1.45 (length) and 1.99 (w/o sem)',
    'usage': 'Tab. 5: usage 96.4% / 93.7% / 79.3% for m = 8 / 12 / 16',
    'm_recon': 'Tab. 5: rFID 1.42 / 1.26 / 1.19 for m = 8 / 12 / 16',
}
PSNR_TOL = 0.1    # dB: PSNR differences below this are called ties
USAGE_TOL = 0.005  # usage differences below half a point are called ties


def compare(a, b, tol):
    """'higher' / 'lower' / 'tie' for a vs b with a tie band of ``tol``."""
    return 'higher' if a - b > tol else 'lower' if b - a > tol else 'tie'


def probe_noise(pa, pb):
    """Tie band of two probe accuracies: twice the standard error of their difference
    over test scenes plus the larger spread between probe seeds."""
    spread = max(max(p['accuracy_by_seed']) - min(p['accuracy_by_seed']) for p in (pa, pb))
    return 2 * (pa['stderr'] ** 2 + pb['stderr'] ** 2) ** 0.5 + spread


def psnr_claim(claim, paper, winner, others):
    """A claim row: the ``winner`` (name, run) reconstructs better than each of ``others``
    ({name: run}) by PSNR, ties within PSNR_TOL."""
    name, run = winner
    psnr = lambda r: r['recon']['psnr']  # noqa: E731
    text = (f'PSNR {name} {num(psnr(run), 2)} vs '
            + ' and '.join(f'{n} {num(psnr(r), 2)}' for n, r in others.items())
            + f' (ties within {PSNR_TOL} dB)')
    outcomes = [compare(psnr(run), psnr(r), PSNR_TOL) for r in others.values()]
    return claim, paper, text, verdict(outcomes, [{'higher'}] * len(others))


def claims(results):
    """(claim, paper, evidence, verdict) for each table present in ``results``."""
    runs, out = results['runs'], []
    by_label = {t: {r['label']: runs[r['run']] for r in rows}
                for t, rows in results['tables'].items()}
    if '4' in by_label:
        t4 = by_label['4']
        spc, rnd, joint, sghc = (t4['SPC, teacher init'], t4['SPC, random-init semantic encoder'],
                                 t4['+ joint texture training (VILA-U / MUSE-VL)'],
                                 t4['+ SGHC (SemHiTok)'])

        def probe_cmp(a, b):
            d, tol = a['probe']['accuracy'] - b['probe']['accuracy'], probe_noise(a['probe'],
                                                                                    b['probe'])
            return compare(d, 0.0, tol), f'{num(a["probe"]["accuracy"])} vs ' \
                f'{num(b["probe"]["accuracy"])} (Δ {d:+.3f}, tie band ±{tol:.3f})'

        o, text = probe_cmp(sghc, spc)
        ids = sghc['semantic_ids_identical']
        out.append(('SGHC keeps the semantic ids and the understanding of its SPC',
                    PAPER['kept'],
                    f'semantic ids {same_text(ids)} on '
                    f'{sghc["recon"]["num_images"]} held-out images; probe accuracy SGHC vs SPC '
                    f'{text}', 'not reproduced' if ids is False else
                    verdict([o], [{'higher', 'tie'}])))
        o1, text1 = probe_cmp(joint, spc)
        o2, text2 = probe_cmp(joint, sghc)
        out.append(('joint texture training costs understanding',
                    PAPER['joint'],
                    f'probe accuracy joint vs SPC {text1}; joint vs SGHC {text2}',
                    verdict([o1, o2], [{'lower'}, {'lower'}])))
        o, text = probe_cmp(spc, rnd)
        out.append(('initialising the semantic encoder from the teacher helps understanding',
                    PAPER['init'],
                    f'probe accuracy teacher-init vs random-init SPC {text}',
                    verdict([o], [{'higher'}])))
        out.append(psnr_claim('SGHC reconstructs better than the SPC alone and than joint '
                              'training', PAPER['sghc_recon'],
                              ('SGHC', sghc), {'SPC': spc, 'joint': joint}))
    if '5' in by_label:
        t5 = by_label['5']
        chan, length, tex = (t5['channel concat, m = 12'], t5['length concat'],
                             t5['texture only (w/o sem)'])
        out.append(psnr_claim('channel concat beats length concat and texture-only',
                              PAPER['fusion'],
                              ('channel', chan), {'length': length, 'texture-only': tex}))
        ms = [t5[f'channel concat, m = {m}'] for m in (8, 12, 16)]
        usage = [e['recon']['usage_global'] for e in ms]
        sub = [e['recon']['usage_subcodes'] for e in ms]
        outcomes = [compare(usage[i], usage[i + 1], USAGE_TOL) for i in range(2)]
        out.append(('codebook usage falls as the sub-codebook grows',
                    PAPER['usage'],
                    'usage of the K*m ids for m = 8 / 12 / 16: ' + ' / '.join(map(pct, usage))
                    + '; of the sub-codes of used semantic codes: ' + ' / '.join(map(pct, sub)),
                    verdict(outcomes, [{'higher'}, {'higher'}])))
        psnr = [e['recon']['psnr'] for e in ms]
        outcomes = [compare(psnr[i + 1], psnr[i], PSNR_TOL) for i in range(2)]
        out.append(('a larger sub-codebook reconstructs better (with diminishing returns)',
                    PAPER['m_recon'],
                    'PSNR for m = 8 / 12 / 16: ' + ' / '.join(num(p, 2) for p in psnr),
                    verdict(outcomes, [{'higher'}, {'higher'}])))
    return out


# ------------------------------------------------------------------ markdown
BEGIN, END = '<!-- BEGIN hand-written -->', '<!-- END hand-written -->'
# the seeded GPU results, written by tools/shapes_reference.py report --chain ablations
GPU_MARKERS = ('<!-- gpu-ablations:begin (generated by tools/shapes_reference.py report '
               '--chain ablations; do not edit by hand) -->', '<!-- gpu-ablations:end -->')


def hand_written(path, markers=(BEGIN, END), default='_(none yet)_'):
    """The block between ``markers`` of an existing report, markers included (kept on
    rewrite): the hand-written interpretation, or with GPU_MARKERS the GPU results ('' where
    absent)."""
    begin, end = markers
    if os.path.isfile(path):
        text = open(path).read()
        if begin in text and end in text:
            return text[text.index(begin):text.index(end) + len(end)]
    return f'{begin}\n{default}\n{end}' if default is not None else ''


def spread(values, unit=' s'):
    return f'{min(values):.0f}–{max(values):.0f}{unit}' if values else '—'


def render(results, meta, out_path):
    mode, runs = meta['mode'], results['runs']
    used = {r['run'] for rows in results['tables'].values() for r in rows}
    seconds = sum(sum(runs[k]['seconds'].values()) for k in runs) + sum(
        results['reference'].get('seconds', {}).values())
    stage1 = [k for k in runs if k not in used]
    stage1_steps = ' / '.join(str(s) for s in sorted({runs[k]['steps'] for k in stage1}))
    train_s = [runs[k]['seconds']['train'] for k in used if 'train' in runs[k]['seconds']]
    probe_s = [runs[k]['seconds']['probe'] for k in used if 'probe' in runs[k]['seconds']]
    lines = [
        '# Ablations on the shapes world (the paper\'s Tab. 4 and Tab. 5)', '',
        f'Generated by `{meta["command"]}` from `{meta["results"]}` (do not edit by hand, except '
        'the interpretation block at the end, which a rerun keeps).', '',
        f'- runs trained {meta["trained"]}; report written {meta["date"]}; device: '
        f'{meta["device"]}',
        f'- compute: {seconds / 60:.1f} min of training and evaluation over '
        f'{len(runs)} runs ({len(stage1)} stage-1 SPC runs), summed over invocations '
        f'(training {spread(train_s)} per row, probe {spread(probe_s)} per row); this '
        f'invocation took {meta["wall_seconds"] / 60:.1f} min',
        f'- steps: {mode["steps"]} per row (same for every row, batch '
        f'{mode["batch_size"] or "of the config"}); the stage-1 SPCs: '
        f'{stage1_steps} steps',
        f'- reconstruction: `tools/test.py --task recon` on {mode["recon_images"]} held-out '
        'scenes (100000..), no LPIPS / rFID',
        f'- understanding: `ShapesProbeEvaluator` on `TokenizerFeatures` (the adapter '
        f'`UnderstandingMLLM` reads), {mode["probe"]["train"]["length"]} training scenes, '
        f'{mode["probe"]["test"]["length"]} held-out scenes, seeds {mode["probe"]["seeds"]}', '',
        'Rows with the same resolved config (e.g. Tab. 4\'s SGHC and Tab. 5\'s channel / m = 12) '
        'are one run. The demo recipes\' discriminator starts at step 400, so runs of 400 '
        'steps or fewer train without the GAN term.', '',
        'What the probe is: a small network (per-token MLP, two depthwise 3x3 convolutions '
        'over the token grid, mean ‖ max pooling) trained on the frozen features to give four '
        'exact answers per scene: how many shapes; which colours; which kinds; which '
        'colour-kind pairs are present (the last three as whole sets). `probe acc.` is the '
        'mean over the four, averaged over probe seeds; `s.e.` its standard error over test '
        'scenes. It stands in for the paper\'s GQA / POPE / SEED: the LLM demo of '
        'docs/understanding.md needs 1,000 steps (21 min a run there) to land 7–10 points '
        'above its blind baseline, too much per row for this budget.', '']
    if '4' in results['tables']:
        ref = results['reference']['probe']
        lines += ['## Tab. 4 (CPU, one run per row): semantic-encoder init, joint texture '
                  'training, SGHC', '',
                  table4(results), '',
                  f'Probe blind baseline (most frequent answers): {num(ref["blind_baseline"])}.'
                  ' Semantic ids: the run\'s `id // m` against its stage-1 SPC\'s ids on the '
                  'recon images.', '']
    if '5' in results['tables']:
        lines += ['## Tab. 5 (CPU, one run per row): fusion type and sub-codebook size', '',
                  table5(results), '',
                  'Usage: share of the K*m global ids used on the recon images; of the m '
                  'sub-codes of each semantic code in use; of the K semantic codes.', '']
    gpu = hand_written(out_path, GPU_MARKERS, None)  # the seeded GPU results, if written
    lines += ['## The paper\'s claims, read from these CPU runs', '',
              f'Computed by `tools/ablate.py` from the numbers above. Ties: PSNR within '
              f'{PSNR_TOL} dB; usage within {100 * USAGE_TOL:.1f} points; probe accuracies '
              'within twice the standard error of their difference plus the larger spread '
              'between probe seeds. A claim is *reproduced* when every comparison goes its '
              'way, *not reproduced* when one goes against it, else *inconclusive*.', '',
              md_table(['claim', 'paper (ImageNet scale)', 'here', 'verdict'],
                       [(c, p, e, f'**{v}**') for c, p, e, v in claims(results)]), '',
              *([gpu, ''] if gpu else []),
              '## Interpretation (hand-written, not generated)', '', hand_written(out_path), '']
    return '\n'.join(lines)


def trained_between(work_dir, runs):
    """'FIRST – LAST (UTC)': when the runs' last logged steps were written."""
    stamps = []
    for key in runs:
        path = os.path.join(work_dir, 'runs', key, 'log.jsonl')
        if os.path.isfile(path):
            with open(path) as f:
                times = [json.loads(line).get('time') for line in f]
            stamps += [t for t in times if t][-1:]
    if not stamps:
        return '—'
    fmt = [datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M')
           for t in (min(stamps), max(stamps))]
    return f'{fmt[0]} – {fmt[1]} UTC'


def device_name():
    try:
        with open('/proc/cpuinfo') as f:
            model = next(line.split(':', 1)[1].strip() for line in f if 'model name' in line)
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f'{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads (CPU)'


def ablate(tables=tuple(sorted(TABLES)), quick=False, work_dir=None, out=None, teacher=TEACHER,
           command='python tools/ablate.py'):
    """Train and evaluate the rows of ``tables`` (keys of TABLES) into ``work_dir``
    (default work_dirs/ablations, or work_dirs/ablations_quick with ``quick``: tiny steps
    and sets) and write the report ``out`` (default docs/ablations.md, WORK_DIR/ablations.md
    with ``quick``); ``command`` is how the report says it was made. Returns the results."""
    work_dir = work_dir or os.path.join(
        ROOT, 'work_dirs', 'ablations_quick' if quick else 'ablations')
    out = out or (os.path.join(work_dir, 'ablations.md') if quick
                  else os.path.join(ROOT, 'docs', 'ablations.md'))
    if not os.path.isfile(os.path.join(teacher, 'config.json')):
        raise FileNotFoundError(f'--teacher {teacher}: no demo teacher export there; make '
                                'it with python tools/train.py registry_configs/demo/'
                                'shapes_siglip.py (or bash tools/run_demo.sh)')
    start = time.time()
    ablation = Ablation(work_dir, teacher, quick)
    for name in tables:
        ablation.table(name)
    results = ablation.results
    # keep tables of earlier invocations whose runs are all still there
    results['tables'] = {t: rows for t, rows in sorted(results['tables'].items())
                         if all(r['run'] in results['runs'] for r in rows)}
    shown = os.path.relpath(ablation.path, ROOT)
    meta = dict(mode=ablation.mode, results=ablation.path if shown.startswith('..') else shown,
                command=command,
                trained=trained_between(ablation.work_dir, results['runs']),
                date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                device=device_name(), wall_seconds=time.time() - start)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    text = render(results, meta, out)
    with open(out, 'w') as f:
        f.write(text)
    print(f'[ablate] wrote {out}')
    return results
