"""Data parallelism on the CPU (gloo): one and two ranks at the same global batch give the
same loss trace, and a checkpoint saved on two ranks resumes on one and back (DeepSpeed
universal checkpoints, converted by the runner when the world size changed).

The single-rank runs train in this process; every two-rank run goes through ONE
``torchrun --nproc_per_node 2`` launch of this file (its ``__main__`` calls
``unimm.apis.train.train`` once per job), which keeps the test inside its time budget.
fp32 on the CPU: traces agree to float rounding of the gradient all-reduce (rtol 1e-5).
The same launch trains an export toy at ZeRO-0 and ZeRO-3 on two ranks, whose exports
must be the same bytes (ZeRO-3 gathers them tensor by tensor, onto rank 0 only).
"""
import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from tests.conftest import release_process_group
from tests.runs import ROOT, TOY, TOY_GAN, start_two_ranks, trace, write_config
from tests.toy import toy_adversarial_terms
from unimm.apis.train import train
from unimm.engine.checkpoint import MARKER
from unimm.models.base import PretrainedMixin
from unimm.registry import MODELS

pytestmark = pytest.mark.slow

RTOL = 1e-5  # fp32; the two-rank all-reduce only reorders the float sums


@MODELS.register_module(force=True)
class DistToyRegressor(PretrainedMixin, nn.Module):
    """An MLP without dropout (a dropout mask depends on which rank holds a sample, so
    the test toys have none); with ``discriminator`` it is a GAN generator like
    tests/toy.py's ToyGenerator. Every parameter group has more elements than ranks,
    which DeepSpeed's universal load needs."""

    def __init__(self, dim=8, hidden=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, batch, discriminator=None):
        fake = self.net(batch['x'])
        out = {'loss': nn.functional.mse_loss(fake, batch['y'])}
        if discriminator is not None:
            out.update(toy_adversarial_terms(batch, fake, discriminator))
        return out


@MODELS.register_module(force=True)
class ExportToy(PretrainedMixin, nn.Module):
    """Every kind of state an export gathers: a frozen input layer (ZeRO-3 partitions it
    too), a trained MLP, and a buffer (a running mean of the inputs)."""

    def __init__(self, dim=8, hidden=16):
        super().__init__()
        self.embed = nn.Linear(dim, hidden).requires_grad_(False)
        self.net = nn.Sequential(nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, 1))
        self.register_buffer('x_mean', torch.zeros(dim))

    def forward(self, batch):
        self.x_mean.lerp_(batch['x'].mean(0).detach(), 0.1)
        return {'loss': nn.functional.mse_loss(self.net(self.embed(batch['x'])), batch['y'])}


def assert_traces_match(got, want, steps):
    assert sorted(got) == list(steps), sorted(got)
    for step in steps:
        assert got[step] == pytest.approx(want[step], rel=RTOL, abs=1e-7), (step, got, want)


@pytest.fixture(scope='module')
def in_process():
    """Undo what in-process runners leave behind: the process group and launcher vars."""
    env = dict(os.environ)
    yield
    release_process_group(env)


@pytest.fixture(scope='module')
def runs(tmp_path_factory, in_process):
    """Regression (ZeRO-2 and 3) and GAN (ZeRO-2) toys: 1 rank, 2 ranks, and each resumed
    at step 4 on the other world size from the other's checkpoint; the export toy at ZeRO-0
    and ZeRO-3 on 2 ranks (``export_z0``, ``export_z3``). {name: work_dir}."""
    tmp = tmp_path_factory.mktemp('dist')
    cfg = {'lin': write_config(tmp / 'lin.py', TOY),
           'gan': write_config(tmp / 'gan.py', TOY_GAN),
           'zero3': write_config(tmp / 'zero3.py', TOY,
                                 deepspeed=dict(zero_stage=3, precision='fp32'))}
    w = {f'{k}_{n}': tmp / f'{k}_{n}' for k in cfg for n in ('1', '2', '2to1', '1to2')}
    step4 = os.path.join('checkpoints', 'step_00000004')
    # the two-rank launch starts first (its imports overlap the single-rank runs); its
    # resumes wait for the single-rank checkpoints they start from
    jobs = [(dict(config=cfg[k], work_dir=w[f'{k}_2']), None) for k in cfg]
    jobs += [(dict(config=cfg[k], work_dir=w[f'{k}_1to2'], resume=w[f'{k}_1'] / step4),
              w[f'{k}_1'] / step4 / MARKER) for k in cfg]
    # no gradient clipping: at two ranks ZeRO-0 and ZeRO-3 then step on the same bits
    for stage in (0, 3):
        w[f'export_z{stage}'] = tmp / f'export_z{stage}'
        jobs.append((dict(config=write_config(
            tmp / f'export_z{stage}.py', TOY, optim_wrapper=dict(clip_grad=None),
            model=dict(_delete_=True, type='ExportToy', dim=8, hidden=16),
            deepspeed=dict(zero_stage=stage, precision='fp32')),
            work_dir=w[f'export_z{stage}']), None))
    two = start_two_ranks(jobs, tmp)
    for k in cfg:
        train(str(cfg[k]), str(w[f'{k}_1']))
    out, _ = two.communicate(timeout=600)
    assert two.returncode == 0, out[-6000:]
    for k in cfg:
        train(str(cfg[k]), str(w[f'{k}_2to1']), resume=str(w[f'{k}_2'] / step4))
    return {name: str(path) for name, path in w.items()}


@pytest.mark.parametrize('toy', ['lin', 'gan', 'zero3'])
def test_one_and_two_ranks_give_the_same_trace(runs, toy):
    one, two = runs[f'{toy}_1'], runs[f'{toy}_2']
    assert_traces_match(trace(two), trace(one), range(1, 9))
    assert trace(one)[8] < trace(one)[1]
    if toy == 'gan':
        assert_traces_match(trace(two, 'disc/loss_d'), trace(one, 'disc/loss_d'), range(1, 9))
    saved = os.path.join(two, 'checkpoints', 'step_00000004')
    with open(os.path.join(saved, 'complete.json')) as f:
        marker = json.load(f)
    assert (marker['global_step'], marker['world_size']) == (4, 2)
    # the manifest lists both ranks' files (shared file system), the marker itself not
    assert {'rng_rank0.safetensors', 'rng_rank1.safetensors'} <= set(marker['files'])
    assert 'complete.json' not in marker['files']
    assert os.path.isfile(os.path.join(saved, 'rng_rank1.safetensors'))
    state = json.load(open(os.path.join(one, 'checkpoints', 'step_00000004',
                                        'runner_state.json')))
    assert (state['world_size'], state['batch_size'], state['batches_in_epoch']) == (1, 16, 4)


@pytest.mark.parametrize('toy', ['lin', 'gan', 'zero3'])
def test_resume_on_another_world_size_continues_the_trace(runs, toy):
    for resumed, source in (('2to1', '2'), ('1to2', '1')):
        got, want = trace(runs[f'{toy}_{resumed}']), trace(runs[f'{toy}_{source}'])
        assert_traces_match(got, want, range(5, 9))
        if toy == 'gan':
            assert_traces_match(trace(runs[f'{toy}_{resumed}'], 'disc/loss_d'),
                                trace(runs[f'{toy}_{source}'], 'disc/loss_d'), range(5, 9))
        converted = os.path.join(runs[f'{toy}_{source}'], 'checkpoints', 'step_00000004',
                                 'universal')
        engines = ['model', 'discriminator'] if toy == 'gan' else ['model']
        assert all(os.path.isdir(os.path.join(converted, e, 'zero')) for e in engines)


def test_a_zero3_export_is_gathered_onto_rank0_and_equals_the_zero0_one(runs):
    """Two ranks, the same training at ZeRO-0 (full weights on every rank) and ZeRO-3
    (partitioned, gathered tensor by tensor for the export): the same trace, the same
    exported bytes, and DeepSpeed's own consolidation of the ZeRO-3 checkpoint agrees with
    them. Only rank 0 built the state dict it wrote."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from safetensors.torch import load_file
    z0, z3 = runs['export_z0'], runs['export_z3']
    assert trace(z0) == trace(z3)  # bit for bit
    for name in ('model.safetensors', 'config.json'):
        with open(os.path.join(z0, 'export', name), 'rb') as a, \
                open(os.path.join(z3, 'export', name), 'rb') as b:
            assert a.read() == b.read(), name
    exported = load_file(os.path.join(z3, 'export', 'model.safetensors'))
    assert sorted(exported) == ['embed.bias', 'embed.weight', 'net.1.bias', 'net.1.weight',
                                'net.3.bias', 'net.3.weight', 'x_mean']
    consolidated = get_fp32_state_dict_from_zero_checkpoint(
        os.path.join(z3, 'checkpoints', 'step_00000008'), tag='model')
    assert set(consolidated) == set(exported)
    for key, value in exported.items():  # frozen weights and the buffer included
        assert torch.equal(consolidated[key], value), key
    for work in (z0, z3):
        built = json.load(open(os.path.join(work, 'export_state_dict_by_rank.json')))
        assert built == {'0': 7, '1': None}


def test_global_batch_must_divide_and_unconvertible_checkpoints_fail_clearly(
        tmp_path, in_process):
    from unimm.engine.config import load_config
    from unimm.engine.runner import Runner
    from unimm.utils.build import ConfigError
    cfg = write_config(tmp_path / 'lin.py', TOY)
    bad = load_config(cfg, {'train_cfg.global_batch_size': 15,
                            'optim_wrapper.accumulative_counts': 2})
    with pytest.raises(ConfigError, match=r'global_batch_size: 15 is not divisible by world '
                                          r'size 1 x optim_wrapper.accumulative_counts 2'):
        Runner(bad, tmp_path / 'bad')
    # a "complete" checkpoint that claims two ranks but has no DeepSpeed states in it
    fake = tmp_path / 'fake' / 'checkpoints' / 'step_00000002'
    (fake / 'model').mkdir(parents=True)
    (fake / 'runner_state.json').write_text(json.dumps({'global_step': 2}))
    (fake / 'complete.json').write_text(json.dumps({'global_step': 2, 'world_size': 2}))
    with pytest.raises(RuntimeError, match=r'cannot convert .*step_00000002 to a DeepSpeed '
                                           r'universal checkpoint .*resume on the world size'):
        Runner(load_config(cfg), tmp_path / 'fake', resume='auto')


# ------------------------------------------------------------------ the scale tools
def test_compare_logs_reports_the_largest_difference(runs, tmp_path, capsys):
    from unimm.apis.compare_logs import compare_runs, parse_steps
    out = tmp_path / 'cmp.json'
    assert compare_runs(runs['lin_1'], [runs['lin_2'], runs['lin_2to1']], json_path=str(out))
    rows = json.loads(out.read_text())
    assert [r['passed'] for r in rows] == [True, True]
    assert rows[0]['keys']['loss']['steps'] == 8 and rows[0]['max_rel'] < RTOL
    assert rows[1]['keys']['loss']['first'] == 5  # the resumed run logged steps 5..8 only
    # the GAN against the regression toy: different losses, and a failing exit status
    assert not compare_runs(runs['lin_1'], [runs['gan_1']], keys=['loss'], steps=(2, 3),
                            rtol=1e-3)
    assert 'FAIL' in capsys.readouterr().out
    assert parse_steps('13:') == (13, 10**12)


def test_export_memory_reports_each_rank_and_exports_the_probe(tmp_path, in_process):
    """unimm.apis.export_memory's measurement in this process (one rank, ZeRO-3): the probe
    model's size and every rank's figures, and the export it measured on disk."""
    from safetensors.torch import load_file

    from unimm.apis.export_memory import measure
    out = measure(str(tmp_path), width=64, depth=3, zero_stage=3)
    assert (out['params'], out['world_size'], out['zero_stage']) == (3 * (64 * 64 + 64), 1, 3)
    assert out['model_mb'] == round(3 * (64 * 64 + 64) * 4 / 2**20, 1)
    assert [r['rank'] for r in out['ranks']] == [0]
    assert out['ranks'][0]['peak_mb'] > out['ranks'][0]['rise_mb']
    saved = load_file(os.path.join(tmp_path, 'export', 'model.safetensors'))
    assert {k: tuple(v.shape) for k, v in saved.items()} == {
        f'layers.{i}.{n}': (64, 64) if n == 'weight' else (64,)
        for i in range(3) for n in ('weight', 'bias')}


# the defaults of tools/benchmark.py's parser for the benchmarks run here
BENCHMARK_DEFAULTS = dict(cfg_options={}, batch=None, steps=10, accum=None, warmup=3,
                          scale='paper', no_raw=False, build_on='device', dry_run=False,
                          out=None, batches=50, samples=None, num_workers=None,
                          shard_size=None, source_size=512, seq=None, json=None)


def benchmark(what, config, **options):
    """unimm.apis.benchmark.run_benchmark on the arguments tools/benchmark.py parses for
    ``what --config config`` with ``options``."""
    from argparse import Namespace

    from unimm.apis.benchmark import run_benchmark
    return run_benchmark(Namespace(**dict(BENCHMARK_DEFAULTS, what=what, config=config,
                                          **options)))


def test_benchmark_tool_checks_its_arguments():
    env = dict(os.environ, PYTHONPATH=ROOT)
    for argv, error in ((['train'], 'train needs --config'),
                        (['twin', '--config', TOY], 'twin needs --out')):
        proc = subprocess.run([sys.executable, os.path.join('tools', 'benchmark.py'), *argv],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        assert proc.returncode == 2 and error in proc.stderr, proc.stderr
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match='train needs a GPU'):
            benchmark('train', TOY)


@pytest.mark.parametrize('recipe', ['sghc_vitb', 't2i_qwen25_3b',
                                    'llava_vicuna7b_sghc_finetune'])
def test_benchmark_train_dry_run(recipe, in_process):
    """The `train` path on the CPU: the recipe's tiny twin through the Runner for 2 steps."""
    config = os.path.join(ROOT, 'registry_configs', f'{recipe}.py')
    out = benchmark('train', config, dry_run=True, batch=2)
    assert (out['twin_scale'], out['world_size'], out['precision']) == ('tiny', 1, 'fp32')
    assert out['step_s'] > 0 and 0 < out['trainable_params'] < out['params']
    if recipe == 'sghc_vitb':  # stage 2 with its GAN, and the raw stack beside it
        assert out['zero_stage'] == 2  # img_s is rounded to 0.1, step_s to 1e-4
        assert out['img_s'] == pytest.approx(2 / out['step_s'], rel=0.01, abs=0.06)
        assert out['raw_img_s'] > 0 and out['vs_raw'] > 0
        assert out['compiled'] == ['model.semantic_encoder', 'model.semantic_proj',
                                   'model.semantic_decoder', 'model.pixel_encoder',
                                   'model.pixel_decoder', 'model.pixel_loss', 'discriminator.net']
    elif recipe == 't2i_qwen25_3b':  # rows of exactly --seq tokens (32 in a dry run)
        assert (out['seq'], out['tokens_per_rank']) == (32, 64)
        assert out['llm_params'] < out['params']  # the frozen image tokenizer is not counted
        assert out['tokens_s'] == pytest.approx(64 / out['step_s'], rel=0.01, abs=0.6)
        flops = 6 * 64 * out['llm_params'] + 12 * 1 * 64 * 32 * 32  # 1 layer, hidden 32
        assert out['mfu_vs_795tflops'] == pytest.approx(
            round(flops / out['step_s'] / 795e12, 3), abs=1e-3)
    else:  # LLaVA phase 2 keeps the recipe's ZeRO-3
        assert out['zero_stage'] == 3 and out['seq'] == 64


def test_benchmark_train_times_an_optimizer_step_of_accum_micro_steps(in_process):
    config = os.path.join(ROOT, 'registry_configs', 't2i_qwen25_3b.py')
    out = benchmark('train', config, dry_run=True, batch=2, accum=2)
    assert (out['accumulation'], out['global_batch']) == (2, 4)
    assert out['tokens_per_rank'] == 2 * 2 * 32  # two micro-batches of 2 rows x 32 tokens
    assert out['tokens_s'] == pytest.approx(128 / out['step_s'], rel=0.01, abs=0.6)


def test_benchmark_loader_and_twin(tmp_path):
    from unimm.engine.config import load_config
    tokens = benchmark('loader', os.path.join(
        ROOT, 'registry_configs', 't2i_qwen25_3b_pretokenized.py'), batches=4, batch=8,
        num_workers=0)
    assert tokens['dataset'] == 'PretokenizedT2IShards' and tokens['samples_per_s'] > 0
    images = benchmark('loader', os.path.join(ROOT, 'registry_configs', 'sghc_vitb.py'),
                       batches=2, batch=4, num_workers=1, source_size=96)
    assert images['samples_per_s'] > 0 and images['num_workers'] == 1
    assert images['gpu_consumes_per_s']['value'] == 319
    out = benchmark('twin', os.path.join(ROOT, 'registry_configs', 't2i_qwen25_3b.py'),
                    scale='tiny', out=str(tmp_path / 'gen'))
    twin = load_config(out['config'])
    assert twin.model.image_tokenizer == str(tmp_path / 'gen' / 'image_tokenizer')
    assert os.path.isfile(os.path.join(twin.model.llm, 'config.json'))
    assert twin.train_dataloader.dataset.type == 'ShapesCaptionDataset'
    assert 'test_cfg' not in twin


if __name__ == '__main__':  # one torchrun launch, several training jobs (see the docstring)
    import time
    from unimm.engine.runner import Runner
    gather = Runner._full_state_dict

    def recorded_gather(runner):
        """Record, per rank, how many tensors the export's state dict held (None: none)."""
        out = gather(runner)
        box = [None] * runner.world_size
        torch.distributed.all_gather_object(box, None if out is None else len(out))
        if runner.rank == 0:
            with open(os.path.join(runner.work_dir, 'export_state_dict_by_rank.json'), 'w') as f:
                json.dump({str(r): n for r, n in enumerate(box)}, f)
        return out
    Runner._full_state_dict = recorded_gather
    for job, wait, env in json.load(open(sys.argv[1])):
        start = time.time()
        while wait and not os.path.isfile(wait):
            if time.time() - start > 300:
                raise TimeoutError(f'{wait} did not appear')
            time.sleep(0.1)
        os.environ.update(env)
        train(**job)
        for key in env:
            del os.environ[key]
