"""The baseline comparison of tools/shapes_reference.py (unimm.apis.shapes_reference;
docs/baselines.md): the baseline recipes of registry_configs/shapes/ differ from
SemHiTok's only by the tokenizer; the chain selects the unfinished steps and what they
need; ``pack`` / ``unpack`` carry the results from the GPU machine and merge the recorded
stages; the report writes the comparison table from the kept results between the markers
of docs/baselines.md; and the chain runs end to end on the CPU at tiny sizes."""
import json
import math
import os
import tarfile

import pytest

import unimm.apis.shapes_reference as chain
from tests.conftest import ROOT


def shapes_config(name):
    from unimm.engine.config import load_config
    return load_config(os.path.join(ROOT, chain.recipe_path(name))).to_dict()


def without(cfg, *paths):
    """``cfg`` with the entries at the dotted ``paths`` removed (a copy)."""
    cfg = json.loads(json.dumps(cfg))
    for path in paths:
        *parents, leaf = path.split('.')
        node = cfg
        for key in parents:
            node = node[key]
        node.pop(leaf)
    return cfg


# ------------------------------------------------------------------ the recipes
@pytest.mark.parametrize('kind', chain.BASELINES)
def test_baseline_mllms_are_semhitoks_with_the_tokenizer_swapped(kind):
    """llava_<kind>_flat64 / t2i_<kind>_flat64 are llava_sghc_flat64 / t2i_flat64 but for
    the tokenizer export (and the pairs pre-tokenised with it)."""
    tok = f'work_dirs/{kind}_flat64/export'
    llava, ref = shapes_config(f'llava_{kind}_flat64'), shapes_config('llava_sghc_flat64')
    assert llava['model']['vision']['tokenizer'] == tok
    assert without(llava, 'model.vision.tokenizer') == without(ref, 'model.vision.tokenizer')
    t2i, ref = shapes_config(f't2i_{kind}_flat64'), shapes_config('t2i_flat64')
    assert t2i['model']['image_tokenizer'] == tok
    assert t2i['train_dataloader']['dataset']['urls'] == f'work_dirs/t2i_{kind}_flat64_tokens'
    swapped = ('model.image_tokenizer', 'train_dataloader.dataset.urls')
    assert without(t2i, *swapped) == without(ref, *swapped)


@pytest.mark.parametrize('kind', chain.BASELINES)
def test_baseline_tokenizers_train_at_semhitoks_budget_with_as_many_ids(kind):
    from unimm.registry import MODELS
    cfg, ref = shapes_config(f'{kind}_flat64'), shapes_config('sghc_flat64')
    for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler', 'train_cfg',
                'discriminator'):
        assert cfg[key] == ref[key], key
    assert cfg['model']['pixel_loss'] == ref['model']['pixel_loss']
    ids = ref['model']['semantic_quantizer']['num_codes'] * ref['model']['pixel_quantizer'][
        'sub_codes']
    model = cfg['model']
    assert model['quantizer']['num_codes'] == ids
    # every tower is the reference teacher (no folder of the demo left)
    towers = {v['pretrained'] for v in model.values() if isinstance(v, dict)
              and v.get('type') == 'SemanticEncoder'}
    if kind == 'pixel_vq':
        assert towers == set()
    else:
        assert towers == {'work_dirs/teacher_flat64/export'}
    assert MODELS.get(model['type']) is not None


def test_the_baseline_chain_trains_evaluates_every_baseline_and_what_the_rows_read():
    names = set(chain.CHAINS['baselines'])
    for kind in chain.BASELINES:
        assert {f'{kind}_flat64', f'llava_{kind}_flat64', f't2i_{kind}_flat64',
                f't2i_{kind}_flat64_tokens', f'llava_{kind}_flat64.vqa'} <= names
        assert all(f't2i_{kind}_flat64.{t}' in names for t in chain.GENEVAL_TASKS)
        assert chain.STEPS[f'llava_{kind}_flat64.vqa'].output == chain.result_path(
            f'llava_{kind}_flat64', 'vqa')
    for _, _, tok, llava, t2i in chain.COMPARISON:
        assert all(n is None or n in chain.STEPS for n in (tok, llava, t2i))


# ------------------------------------------------------------------ scheduling
def test_to_run_adds_the_unfinished_prerequisites_of_the_selected_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def step(name, *needs):
        return chain.Step(needs, None, str(tmp_path / name))
    monkeypatch.setattr(chain, 'STEPS', {
        'a': step('a'), 'b': step('b', 'a'), 'c': step('c', 'b'), 'x': step('x'),
        'y': step('y', 'x')})
    monkeypatch.setattr(chain, 'CHAINS', {'one': ['c'], 'two': ['x', 'y']})
    assert chain.to_run(chain='one') == ['a', 'b', 'c']
    assert chain.to_run(chain='two', only=['y']) == ['x', 'y']
    (tmp_path / 'b').write_text('done')  # b finished: a is not needed any more
    assert chain.to_run(chain='one') == ['c']
    assert chain.to_run() == ['a', 'c', 'x', 'y']  # every unfinished step
    (tmp_path / 'c').write_text('done')
    assert chain.to_run(chain='one') == []


# ------------------------------------------------------------------ pack / unpack
def test_pack_then_unpack_brings_results_and_exports_and_merges_the_stages(
        tmp_path, monkeypatch):
    gpu, here = tmp_path / 'gpu', tmp_path / 'here'
    for d in (gpu, here):
        (d / chain.STATE).mkdir(parents=True)
    monkeypatch.chdir(gpu)
    (gpu / chain.STATE / 'stages.json').write_text(json.dumps(
        {'joint_flat64': {'wall_s': 400.0, 'device': 'GPU', 'date': 'd', 'concurrent': 3}}))
    (gpu / chain.STATE / 'llava_joint_flat64').mkdir()
    (gpu / chain.STATE / 'llava_joint_flat64' / 'test_vqa.json').write_text('{"accuracy": 0.5}')
    (gpu / chain.STATE / 'llava_joint_flat64.vqa.log').write_text('log')
    (gpu / chain.STATE / 'llava_sghc_flat64').mkdir()  # not a step of the baseline chain
    (gpu / chain.STATE / 'llava_sghc_flat64' / 'test_vqa.json').write_text('{}')
    export = gpu / 'work_dirs' / 'joint_flat64' / 'export'
    export.mkdir(parents=True)
    (export / 'config.json').write_text('{"type": "JointTokenizer"}')
    (gpu / 'work_dirs' / 'joint_flat64' / 'log.jsonl').write_text('{"step": 1}\n')
    (gpu / 'work_dirs' / 'joint_flat64' / 'checkpoints').mkdir()  # stays behind
    chain.shapes_reference('pack', chain='baselines', out=str(tmp_path / 'out'),
                           exports=['joint_flat64'])
    assert sorted(os.listdir(tmp_path / 'out')) == ['joint_flat64.tar', 'results.tar']
    with tarfile.open(tmp_path / 'out' / 'results.tar') as tar:
        assert sorted(tar.getnames()) == sorted([
            f'{chain.STATE}/stages.json', f'{chain.STATE}/llava_joint_flat64/test_vqa.json',
            f'{chain.STATE}/llava_joint_flat64.vqa.log', 'work_dirs/joint_flat64/log.jsonl'])
    chain.pack(str(tmp_path / 'out2'), 'baselines', ['pixel_vq_flat64'])  # not trained: left out
    assert os.listdir(tmp_path / 'out2') == ['results.tar']

    monkeypatch.chdir(here)
    (here / chain.STATE / 'stages.json').write_text(json.dumps(
        {'sghc_flat64': {'wall_s': 385.0, 'device': 'GPU', 'date': 'd', 'concurrent': 4}}))
    chain.shapes_reference('unpack', [str(tmp_path / 'out' / 'results.tar'),
                                      str(tmp_path / 'out' / 'joint_flat64.tar')])
    stages = json.loads((here / chain.STATE / 'stages.json').read_text())
    assert set(stages) == {'sghc_flat64', 'joint_flat64'}
    assert json.loads((here / chain.result_path('llava_joint_flat64', 'vqa')).read_text()) == {
        'accuracy': 0.5}
    assert (here / 'work_dirs' / 'joint_flat64' / 'export' / 'config.json').is_file()
    assert not (here / 'work_dirs' / 'joint_flat64' / 'checkpoints').exists()


def test_a_large_export_travels_in_parts_and_comes_back_whole(tmp_path, monkeypatch):
    """The GPU machine returns files of at most 16 MiB: a larger tar is split into parts,
    and unpack joins them (in order) before extracting."""
    gpu, here = tmp_path / 'gpu', tmp_path / 'here'
    export = gpu / 'work_dirs' / 'joint_flat64' / 'export'
    export.mkdir(parents=True)
    (export / 'config.json').write_text('{"type": "JointTokenizer"}')
    weights = os.urandom(50_000)
    (export / 'model.safetensors').write_bytes(weights)
    monkeypatch.chdir(gpu)
    chain.pack(str(tmp_path / 'out'), 'baselines', ['joint_flat64'], part_bytes=16_384)
    parts = sorted(p for p in os.listdir(tmp_path / 'out') if p.startswith('joint_flat64'))
    assert parts == [f'joint_flat64.tar.part{i:03d}' for i in range(len(parts))]
    assert len(parts) >= 4 and all(os.path.getsize(tmp_path / 'out' / p) <= 16_384
                                   for p in parts)
    here.mkdir()
    monkeypatch.chdir(here)
    chain.unpack([str(tmp_path / 'out' / p) for p in reversed(parts)])  # any order given
    assert (here / 'work_dirs' / 'joint_flat64' / 'export' / 'model.safetensors'
            ).read_bytes() == weights


def test_unpack_refuses_a_path_outside_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'evil').write_text('x')
    with tarfile.open(tmp_path / 'bad.tar', 'w') as tar:
        tar.add(tmp_path / 'evil', arcname='../evil')
    with pytest.raises(ValueError, match='not a plain path'):
        chain.unpack([str(tmp_path / 'bad.tar')])


# ------------------------------------------------------------------ the report
def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def vqa(accuracy):
    return {'accuracy': accuracy, 'chance': 0.35, 'blind_baseline': 0.437,
            'num_questions': 1000, 'accuracy_by_type': {}}


def test_report_writes_the_comparison_between_the_markers_from_the_kept_results(
        tmp_path, monkeypatch):
    """Kept scores and test JSONs only (no exports): every number lands in its row, the
    Janus row reads the teacher's VQA and the pixel VQ's tokenizer and t2i, a row without
    runs shows dashes, the hand-written text stays and a second report replaces the block."""
    monkeypatch.chdir(tmp_path)
    state = tmp_path / chain.STATE
    scores = {'sghc_flat64': (26.73, 12288), 'spc_only_decoder_flat64': (25.44, 1024),
              'pixel_vq_flat64': (31.25, 12288), 'joint_flat64': (22.5, 12288)}
    for name, (psnr, ids) in scores.items():
        write_json(state / name / 'scores.json', {
            'psnr': psnr, 'ssim': 0.9, 'lpips': 0.05, 'attribute_accuracy': 0.875,
            'usage_global': 0.25, 'distinct_ids': 3072, 'id_entropy': 4.5,
            'position_entropy': 2.25, 'geneval_ceiling': 0.7, 'vocab_size': ids})
    for name, acc in (('llava_sghc_flat64', 0.606), ('llava_teacher_flat64', 0.68),
                      ('llava_pixel_vq_flat64', 0.512), ('llava_joint_flat64', 0.633)):
        write_json(state / name / 'test_vqa.json', vqa(acc))
    for name, overall, floor in (('t2i_flat64', 0.25, 0.01), ('t2i_pixel_vq_flat64', 0.125,
                                                                  0.02)):
        for task, value in zip(chain.GENEVAL_TASKS, (overall, floor, 0.8)):
            write_json(state / name / f'test_{task}.json', {'overall': value})
    log = tmp_path / 'work_dirs' / 't2i_flat64' / 'log.jsonl'  # its training log
    log.parent.mkdir(parents=True)
    log.write_text(''.join(json.dumps({'step': step, 'loss': 2.0 if step < 1000 else 1.25})
                           + '\n' for step in range(100, 1001, 100)))
    write_json(state / 'ground_truth_flat64.json',
               {'attribute_accuracy': 1.0, 'geneval_ceiling': 0.99})
    write_json(state / 'stages.json', {
        'sghc_flat64': {'wall_s': 385.3, 'device': 'H100', 'date': '2026-12-07',
                        'concurrent': 4},
        'pixel_vq_flat64': {'wall_s': 300.0, 'device': 'H100', 'date': '2026-12-08',
                            'concurrent': 3}})
    docs = tmp_path / 'docs'
    docs.mkdir()
    (docs / 'baselines.md').write_text(f'# Baselines\n\nHand-written.\n\n{chain.MARKERS[0]}\n'
                                       f'old table\n{chain.MARKERS[1]}\n\n## After\n\nKept.\n')
    chain.shapes_reference('report', chain='baselines', docs=str(docs))
    text = (docs / 'baselines.md').read_text()
    assert text.startswith('# Baselines\n\nHand-written.\n\n') and text.endswith(
        '\n\n## After\n\nKept.\n')
    assert 'old table' not in text and text.count(chain.MARKERS[0]) == 1
    rows = {line.split(' | ')[0][2:]: line.split(' | ') for line in text.splitlines()
            if line.startswith('| ') and ' | ' in line}
    assert rows['SemHiTok (SGHC)'][1:3] == ['12,288', '26.73']
    assert rows['SemHiTok (SGHC)'][7:10] == ['3,072', '4.500', '2.250']
    assert rows['SemHiTok (SGHC)'][-3:] == ['0.606', '0.250', '1.250 |']  # loss: last 10 %
    assert rows['SPC only'][1:3] == ['1,024', '25.44'] and rows['SPC only'][-3:] == ['–'] * 2 + [
        '– |']
    assert rows['pixel VQ (LlamaGen)'][2] == '31.25'
    assert rows['pixel VQ (LlamaGen)'][-3:] == ['0.512', '0.125', '– |']
    janus = rows['dual encoder (Janus)']
    assert janus[2] == '31.25' and janus[-3:] == ['0.680', '0.125', '– |']
    assert rows['joint (VILA-U / MUSE-VL)'][-3:] == ['0.633', '–', '– |']
    assert set(rows['dual codebook (TokenFlow)'][1:]) == {'–', '– |'}
    assert rows['blind / random tokens'][-3:] == ['0.437', '0.020', '– |']
    assert rows['real images'][5] == '1.000' and rows['real images'][10] == '0.990'
    assert rows['pixel_vq_flat64'][1:] == ['H100', '2026-12-08', '5.0 min', '3 |']
    assert 'sghc_flat64' in rows
    chain.shapes_reference('report', chain='baselines', docs=str(docs))
    assert (docs / 'baselines.md').read_text() == text


def test_report_appends_the_markers_where_they_are_missing(tmp_path):
    path = tmp_path / 'doc.md'
    path.write_text('# Title\n')
    chain.write_between_markers(str(path), [chain.MARKERS[0], 'table', chain.MARKERS[1]])
    assert path.read_text() == f'# Title\n\n{chain.MARKERS[0]}\ntable\n{chain.MARKERS[1]}\n'
    chain.write_between_markers(str(path), [chain.MARKERS[0], 'new', chain.MARKERS[1]])
    assert path.read_text() == f'# Title\n\n{chain.MARKERS[0]}\nnew\n{chain.MARKERS[1]}\n'


# ------------------------------------------------------------------ end to end
TINY = ['train_cfg.max_steps=2', 'train_cfg.log_interval=1', 'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0', 'log_cfg.tensorboard=False',
        '_source_dataset.length=6',
        # the evaluations (tools/test.py reads the same options; training ignores test_cfg)
        'test_cfg.vqa.max_questions=8', 'test_cfg.vqa.dataset.length=4',
        *(f'test_cfg.{t}.{k}=1' for t in chain.GENEVAL_TASKS for k in ('n_per_tag', 'n_samples'))]


@pytest.mark.slow
def test_the_baseline_chain_runs_end_to_end_on_the_cpu(chain_folder, tmp_path, monkeypatch,
                                                       capsys):
    """The pixel-VQ baseline at tiny sizes: tokenizer, reference LLM, pre-tokenised pairs,
    LLaVA and t2i models and their evaluations; pack, unpack elsewhere, report."""
    evaluations = ['llava_pixel_vq_flat64.vqa',
                   *(f't2i_pixel_vq_flat64.{t}' for t in chain.GENEVAL_TASKS)]
    chain.shapes_reference('train', chain='baselines', only=evaluations, parallel=2,
                           cfg_options=TINY)
    printed = {line.split(':')[0] for line in capsys.readouterr().out.splitlines()}
    assert printed == {'pixel_vq_flat64', 'reference_llama', 't2i_pixel_vq_flat64_tokens',
                       'llava_pixel_vq_flat64', 't2i_pixel_vq_flat64', *evaluations}
    result = json.loads(open(chain.result_path('llava_pixel_vq_flat64', 'vqa')).read())
    assert result['num_questions'] == 8 and 0 <= result['accuracy'] <= 1
    for task, generator in zip(chain.GENEVAL_TASKS, ('model', 'random_tokens',
                                                     'reconstruction')):
        result = json.loads(open(chain.result_path('t2i_pixel_vq_flat64', task)).read())
        assert result['generator'] == generator and 0 <= result['overall'] <= 1

    chain.shapes_reference('pack', chain='baselines', out='out', exports=['pixel_vq_flat64'])
    here = tmp_path / 'here'
    here.mkdir()
    os.symlink(os.path.join(ROOT, 'registry_configs'), here / 'registry_configs')
    monkeypatch.chdir(here)
    chain.shapes_reference('unpack', [str(tmp_path / 'out' / 'results.tar'),
                                      str(tmp_path / 'out' / 'pixel_vq_flat64.tar')])
    # the scores a GPU machine cannot make (LPIPS weights are local): made here, kept
    write_json(here / chain.STATE / 'ground_truth_flat64.json',
               {'attribute_accuracy': 1.0, 'geneval_ceiling': 1.0})
    write_json(here / chain.STATE / 'pixel_vq_flat64' / 'scores.json',
               {'psnr': 12.5, 'vocab_size': 12288})
    chain.shapes_reference('report', chain='baselines', docs='docs')
    text = (here / 'docs' / 'baselines.md').read_text()
    row = next(line for line in text.splitlines() if line.startswith('| pixel VQ'))
    vqa_accuracy = json.loads((here / chain.result_path('llava_pixel_vq_flat64', 'vqa'))
                              .read_text())['accuracy']
    geneval = json.loads((here / chain.result_path('t2i_pixel_vq_flat64', 'shapes_geneval'))
                         .read_text())['overall']
    assert row.split(' | ')[1:3] == ['12,288', '12.50']
    assert row.split(' | ')[-3:-1] == [chain.fmt(vqa_accuracy), chain.fmt(geneval)]
    assert math.isfinite(float(row.split(' | ')[-1].rstrip(' |')))  # its t2i's final loss
    assert '| t2i_pixel_vq_flat64 | CPU |' in text
