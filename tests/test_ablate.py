"""The ablations (unimm.apis.ablate, behind tools/ablate.py) end to end in quick mode
(every row trained through the Runner, evaluated, and the report written from
results.json), its skip-on-rerun, the verdict
logic on synthetic numbers, the shapes probe, and TokenizerFeatures over every tokenizer."""
import copy
import json
import os

import pytest
import torch

from tests.conftest import release_process_group
from tests.tiny_baselines import configs as baseline_configs
from tests.tiny_semhitok import config as semhitok_config
from unimm.apis import ablate
from unimm.datasets.shapes import ShapesWorld
from unimm.evaluation.probe import object_tokens
from unimm.models.mllm.projector import MLPProjector
from unimm.registry import METRICS, MODELS

HAND_WRITTEN = f'{ablate.BEGIN}\nmy reading of the runs\n{ablate.END}'
GPU_BLOCK = f'{ablate.GPU_MARKERS[0]}\nthe seeded GPU tables\n{ablate.GPU_MARKERS[1]}'


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    """One quick run on a random 64 px teacher: (results, report text, work dir, arguments).
    The in-process runners' process group and launcher variables are undone afterwards."""
    from transformers import SiglipVisionConfig, SiglipVisionModel
    env = dict(os.environ)
    root = tmp_path_factory.mktemp('ablate')
    torch.manual_seed(0)
    SiglipVisionModel(SiglipVisionConfig(image_size=64, patch_size=8, hidden_size=96,
                                         intermediate_size=192, num_hidden_layers=1,
                                         num_attention_heads=4)).save_pretrained(root / 'teacher')
    kwargs = dict(quick=True, work_dir=str(root / 'work'), out=str(root / 'ablations.md'),
                  teacher=str(root / 'teacher'))
    results = ablate.ablate(**kwargs)
    yield copy.deepcopy(results), (root / 'ablations.md').read_text(), root / 'work', kwargs
    release_process_group(env)


def md_tables(text):
    """{section heading: [row dict by column header]} for every markdown table."""
    out, heading, header = {}, None, None
    for line in text.splitlines():
        if line.startswith('## '):
            heading, header = line[3:], None
        elif line.startswith('| ') and heading:
            cells = [c.strip() for c in line.strip('|').split('|')]
            if header is None:
                header = cells
                out[heading] = []
            else:
                out[heading].append(dict(zip(header, cells)))
        elif not line.startswith('|'):
            header = None
    return {h: [r for r in rows if not set(r.values()) <= {'---'}] for h, rows in out.items()}


def close(cell, value, digits):
    return abs(float(cell.rstrip('%')) - value) <= 0.5 * 10 ** -digits + 1e-9


@pytest.mark.slow
def test_report_holds_every_row_with_the_numbers_of_results_json(quick):
    results, text, _, _ = quick
    tables = md_tables(text)
    t4 = tables['Tab. 4 (CPU, one run per row): semantic-encoder init, joint texture '
                'training, SGHC']
    t5 = tables['Tab. 5 (CPU, one run per row): fusion type and sub-codebook size']
    assert [r['row'] for r in t4[:-1]] == [row.label for row in ablate.TABLES['4']]
    assert t4[-1]['row'].startswith('reference') and t4[-1]['PSNR'] == '—'
    assert [r['row'] for r in t5] == [row.label for row in ablate.TABLES['5']]
    for name, rows in (('4', t4[:-1]), ('5', t5)):
        for cells, row in zip(rows, results['tables'][name]):
            entry = results['runs'][row['run']]
            assert cells['run'] == f'`{row["run"]}`' and cells['steps'] == '2'
            assert close(cells['PSNR'], entry['recon']['psnr'], 2)
            assert close(cells['SSIM'], entry['recon']['ssim'], 3)
            assert close(cells['attr. acc.'], entry['recon']['attribute_accuracy'], 3)
            if name == '4':
                assert close(cells['probe acc.'], entry['probe']['accuracy'], 3)
                assert close(cells['kinds'], entry['probe']['accuracy_by_group']['kinds'], 3)
            else:
                assert close(cells['usage (global)'], 100 * entry['recon']['usage_global'], 1)
                assert cells['m'] == str(entry['sub_codes'] or '—')
    ref = results['reference']['probe']
    assert close(t4[-1]['probe acc.'], ref['accuracy'], 3)
    # tiny sets, but still real evaluations
    assert all(results['runs'][r['run']]['recon']['num_images'] == 16
               for rows in results['tables'].values() for r in rows)
    claims = tables['The paper\'s claims, read from these CPU runs']
    assert len(claims) == 7 and all(c['verdict'].strip('*') in (
        'reproduced', 'not reproduced', 'inconclusive') for c in claims)


@pytest.mark.slow
def test_rows_that_train_the_same_config_share_one_run(quick):
    results, _, work, _ = quick
    t4 = {r['label']: r['run'] for r in results['tables']['4']}
    t5 = {r['label']: r['run'] for r in results['tables']['5']}
    assert t4['+ SGHC (SemHiTok)'] == t5['channel concat, m = 12']
    assert t4['SPC, teacher init'] == t5['semantic only (no texture branch)']
    assert t4['SPC, random-init semantic encoder'] != t4['SPC, teacher init']
    # 9 distinct pixel-stage rows and the two stage-1 SPCs, each trained once
    assert len(results['runs']) == 11 == len(os.listdir(work / 'runs'))


@pytest.mark.slow
def test_semantic_ids_stay_bit_identical_for_semhitok_rows(quick):
    results = quick[0]
    for rows in results['tables'].values():
        for row in rows:
            entry = results['runs'][row['run']]
            semhitok = 'semhitok' in row['config']
            assert entry['semantic_ids_identical'] is (True if semhitok else None), row
            assert (entry['fusion'] is not None) == semhitok


@pytest.mark.slow
def test_rerun_skips_every_done_row_and_keeps_the_hand_written_and_gpu_blocks(quick,
                                                                            monkeypatch):
    results, _, work, kwargs = quick
    out = kwargs['out']
    with open(out) as f:
        text = f.read()
    start, end = text.index(ablate.BEGIN), text.index(ablate.END) + len(ablate.END)
    with open(out, 'w') as f:
        f.write(text[:start] + HAND_WRITTEN + text[end:] + GPU_BLOCK)

    def forbidden(*a, **k):
        raise AssertionError('a done row was trained or evaluated again')

    for target in ('train', 'evaluate', 'run_probe'):
        monkeypatch.setattr(f'unimm.apis.ablate.{target}', forbidden)
    again = ablate.ablate(**kwargs)
    assert again['runs'] == results['runs']
    with open(out) as f:
        text = f.read()
    # both kept; the GPU results before the interpretation, outside the CPU tables
    assert text.index(ablate.GPU_MARKERS[0]) > text.index('read from these CPU runs')
    assert text.index(GPU_BLOCK) < text.index(HAND_WRITTEN)


@pytest.mark.slow
def test_a_killed_training_resumes_and_a_changed_eval_reruns_only_the_eval(quick, monkeypatch):
    """Without an export a row trains again from its newest checkpoint; recon settings that
    differ from the stored ones re-evaluate without retraining."""
    results, _, work, kwargs = quick
    key = results['tables']['5'][0]['run']
    export = work / 'runs' / key / 'export'
    calls = []

    def train(*args):  # stands in for the resumed training, which writes the export
        calls.append(('train', args))
        os.rename(str(export) + '.bak', export)

    monkeypatch.setattr('unimm.apis.ablate.train', train)
    monkeypatch.setattr('unimm.apis.ablate.evaluate', lambda *args: calls.append(('test', args))
                        or dict(results['runs'][key]['recon']))
    state = json.loads((work / 'results.json').read_text())
    state['runs'][key]['recon_settings'] = {'stale': True}
    (work / 'results.json').write_text(json.dumps(state))
    ablate.ablate(tables=['5'], **kwargs)
    assert [c[0] for c in calls] == ['test']
    os.rename(export, str(export) + '.bak')
    ablate.ablate(tables=['5'], **kwargs)
    trained = [args for kind, args in calls if kind == 'train']
    assert len(trained) == 1 and trained[0][1:] == (str(work / 'runs' / key), 'auto')
    assert [c[0] for c in calls] == ['test', 'train', 'test']  # retrained rows re-evaluate


def test_verdicts_follow_the_numbers():
    def probe(acc, se=0.01):
        return {'accuracy': acc, 'stderr': se, 'accuracy_by_seed': [acc, acc]}

    def run(psnr=20.0, acc=0.5, ids=True, usage=0.5):
        return {'recon': {'psnr': psnr, 'num_images': 10, 'usage_global': usage,
                          'usage_subcodes': usage}, 'probe': probe(acc),
                'semantic_ids_identical': ids}

    runs = {'rnd': run(acc=0.40), 'spc': run(psnr=19.0, acc=0.50), 'joint': run(acc=0.30),
            'sghc': run(psnr=21.0, acc=0.51), 'tex': run(psnr=20.0), 'len': run(psnr=21.05),
            'm8': run(psnr=20.5, usage=0.9), 'm16': run(psnr=21.5, usage=0.5)}
    rows4 = ['rnd', 'spc', 'joint', 'sghc', 'tex']
    rows5 = ['tex', 'spc', 'len', 'm8', 'sghc', 'm16']
    results = {'runs': runs, 'tables': {
        '4': [{'label': r.label, 'run': k} for r, k in zip(ablate.TABLES['4'], rows4)],
        '5': [{'label': r.label, 'run': k} for r, k in zip(ablate.TABLES['5'], rows5)]}}
    verdicts = {c: v for c, _, _, v in ablate.claims(results)}
    assert verdicts == {
        'SGHC keeps the semantic ids and the understanding of its SPC': 'reproduced',
        'joint texture training costs understanding': 'reproduced',
        'initialising the semantic encoder from the teacher helps understanding': 'reproduced',
        'SGHC reconstructs better than the SPC alone and than joint training': 'reproduced',
        # length is 0.05 dB behind channel: a tie
        'channel concat beats length concat and texture-only': 'inconclusive',
        # usage 90% / 50% / 50%: the second step is a tie
        'codebook usage falls as the sub-codebook grows': 'inconclusive',
        'a larger sub-codebook reconstructs better (with diminishing returns)': 'reproduced'}
    runs['sghc']['semantic_ids_identical'] = False
    runs['joint']['probe'] = probe(0.7)
    verdicts = {c: v for c, _, _, v in ablate.claims(results)}
    assert verdicts['SGHC keeps the semantic ids and the understanding of its SPC'] == \
        'not reproduced'
    assert verdicts['joint texture training costs understanding'] == 'not reproduced'


class PatchFeatures(torch.nn.Module):
    """Oracle features: each 8x8 patch's raw pixels (what any tokenizer started from)."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images):
        return torch.nn.functional.unfold(images, 8, stride=8).transpose(1, 2)


class BlankFeatures(PatchFeatures):
    def forward(self, images):
        return torch.zeros(len(images), 64, 4)


class PositionCoded(PatchFeatures):
    def forward(self, images):
        code = MLPProjector(1, 1, pos_dim=16).position_code(64)
        return torch.cat([super().forward(images), code.expand(len(images), -1, -1)], -1)


def test_probe_reads_scene_facts_from_informative_features():
    evaluator = METRICS.build(dict(
        type='ShapesProbeEvaluator', hidden=32, epochs=15, seeds=[0],
        train=dict(type='ShapesCaptionDataset', start=0, length=400),
        test=dict(type='ShapesCaptionDataset', start=100000, length=100)))
    out = evaluator(PatchFeatures())
    assert (out['num_train'], out['num_test'], len(out['accuracy_by_seed'])) == (400, 100, 1)
    assert out['accuracy'] > out['blind_baseline'] + 0.1
    # blind: 0.20 on count, 0.04 on colours
    assert out['accuracy_by_group']['count'] > 0.4 and out['accuracy_by_group']['colours'] > 0.3
    blank = evaluator(BlankFeatures())  # features that carry nothing: no better than blind
    assert blank['accuracy'] <= blank['blind_baseline'] + 0.02
    # pixel patches say what is there, not where: an object token's column is near chance,
    # and read once the projector's position code is appended (0.90)
    assert out['column_chance'] == 1 / 8 and out['column_accuracy'] < 0.25
    assert evaluator(PositionCoded())['column_accuracy'] > 0.85


def test_object_tokens_follow_the_shapes_boxes():
    scene = ShapesWorld(0, 64).scene(3)
    mask = object_tokens(scene, 8).view(8, 8)
    for shape in scene:  # the token under each centre is selected
        assert mask[min(int(shape.cy * 8), 7), min(int(shape.cx * 8), 7)]
    area = sum((2 * s.extent) ** 2 for s in scene)
    assert abs(mask.float().mean().item() - area) < 0.15


def test_tokenizer_features_reads_every_tokenizer(teacher):
    tokenizers = dict(baseline_configs(teacher), semhitok=semhitok_config(teacher, stage='sghc'))
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    expected_dim = {'pixel_vq': 8, 'joint': 8, 'dual_codebook': 12, 'dual_encoder': 32,
                    'semhitok': 16}
    for name, cfg in tokenizers.items():
        torch.manual_seed(0)
        vision = MODELS.build(dict(type='TokenizerFeatures', tokenizer=cfg))
        feats = vision(images)
        assert feats.shape == (2, vision.num_tokens, vision.out_dim), name
        assert (vision.num_tokens, vision.out_dim, vision.image_size) == \
            (16, expected_dim[name], 32), name
        rebuilt = MODELS.build(vision.export_config())
        assert rebuilt.out_dim == vision.out_dim, name
    semantic = MODELS.build(dict(type='TokenizerFeatures', llm_features='semantic',
                                 tokenizer=tokenizers['semhitok']))
    assert semantic.out_dim == 8 == semantic(images).shape[-1]
