"""The runner: training, export, weights-only checkpoint loads, two optimizers, EMA and
config errors. Faults (kills, SIGTERM, damaged checkpoints, a full disk, corrupt data,
non-finite losses) and what the user sees: tests/test_faults.py. Two-rank training
(torchrun, gloo) and resuming on another world size: tests/test_distributed.py."""
import json
import os

import pytest
import torch

from tests.runs import TOY, TOY_GAN, reference, run, trace  # noqa: F401 (reference: a fixture)
from unimm.engine.checkpoint import MARKER, complete_checkpoints
from unimm.engine.config import load_config
from unimm.utils.build import ConfigError


@pytest.mark.slow
def test_uninterrupted_run_learns_and_exports(reference):
    losses = trace(reference)
    assert sorted(losses) == list(range(1, 31))
    assert losses[30] < 0.5 * losses[1]
    from unimm.models.base import PretrainedMixin
    model = PretrainedMixin.from_pretrained(os.path.join(reference, 'export'))
    from safetensors.torch import load_file
    saved = load_file(os.path.join(reference, 'export', 'model.safetensors'))
    assert set(saved) == set(model.state_dict())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    assert [s for s, _ in complete_checkpoints(os.path.join(reference, 'checkpoints'))] == [25, 30]
    assert os.listdir(os.path.join(reference, 'tensorboard'))


class _RunsACommand:
    """Unpickles into ``os.system(command)``: what a planted checkpoint file could do."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.slow
def test_checkpoint_files_are_unpickled_weights_only(reference, tmp_path):
    """DeepSpeed loads its files with weights_only=False; inside the runner's guard torch
    unpickles them weights-only all the same: the real files load (DeepSpeed's state
    classes allowed), and a model-states file carrying a command (its manifest rewritten to
    match, as whoever planted it could) is refused from the command line; nothing runs."""
    import pickle
    import shutil
    from unimm.engine.checkpoint import manifest, weights_only_loads
    work = tmp_path / 'run'
    shutil.copytree(reference, work)
    newest = work / 'checkpoints' / 'step_00000030'
    states = newest / 'model' / 'mp_rank_00_model_states.pt'
    optim = next((newest / 'model').glob('*optim_states.pt'))
    with pytest.raises(pickle.UnpicklingError, match='LossScaler|ZeroStageEnum|fragment'):
        torch.load(optim, weights_only=True)  # DeepSpeed's classes need the allowance
    with weights_only_loads():
        assert torch.load(optim, weights_only=False)['optimizer_state_dict']['zero_stage'] == 2
    assert 'TORCH_FORCE_WEIGHTS_ONLY_LOAD' not in os.environ

    planted = tmp_path / 'planted'
    saved = torch.load(states, weights_only=False)  # our own file, in this test
    saved['note'] = _RunsACommand(f'touch {planted}')
    torch.save(saved, states)
    with weights_only_loads(), pytest.raises(pickle.UnpicklingError, match='system'):
        torch.load(states, weights_only=False)
    marker = json.loads((newest / MARKER).read_text())
    files = {k: v for k, v in manifest(newest).items() if k != MARKER}
    (newest / MARKER).write_text(json.dumps(dict(marker, files=files)))
    code, out = run(TOY, work, '--resume', str(newest), check=False)
    assert code != 0 and not planted.exists()
    assert f'{newest}/model: refusing to unpickle a checkpoint file' in out, out[-3000:]
    assert 'system' in out.split('refusing to unpickle')[1].splitlines()[0]


@pytest.mark.slow
def test_two_optimizers_step_generator_and_discriminator(tmp_path):
    run(TOY_GAN, tmp_path, '--cfg-options', 'train_cfg.max_steps=6')
    trace = [json.loads(l) for l in open(tmp_path / 'log.jsonl')]
    recs = [r for r in trace if 'loss' in r]
    assert all('disc/loss_d' in r and 'loss_adv' in r for r in recs)
    from safetensors.torch import load_file
    ckpt = os.path.join(tmp_path, 'checkpoints', 'step_00000006')
    assert os.path.isdir(os.path.join(ckpt, 'discriminator'))
    export = load_file(os.path.join(tmp_path, 'export', 'model.safetensors'))
    assert set(export) == {'net.weight', 'net.bias'}  # the discriminator is not in the G export


def test_config_errors_name_the_path_and_closest_names(tmp_path):
    import tests.toy  # noqa: F401  registers the toy components
    from unimm.registry import MODELS
    with pytest.raises(ConfigError, match=r"model\.type: unknown model type 'ToyRegresor'.*"
                                          r"'ToyRegressor'"):
        MODELS.build(dict(type='ToyRegresor'), path='model')
    with pytest.raises(ConfigError, match=r"model \(ToyRegressor\): unexpected argument "
                                          r"'hiden' \(closest: 'hidden'"):
        MODELS.build(dict(type='ToyRegressor', hiden=3), path='model')
    with pytest.raises(ConfigError, match=r"discriminator \(ToyDiscriminator\)|missing"):
        MODELS.build(dict(type='ToyDiscriminator', dimm=3), path='discriminator')
    bad = tmp_path / 'bad.py'
    bad.write_text(f"_base_ = ['{TOY}']\nmodel = dict(type='ToyRegressr')\n")
    with pytest.raises(ConfigError, match=r"model\.type: unknown type 'ToyRegressr'"):
        load_config(str(bad))
    bad.write_text(f"_base_ = ['{TOY}']\noptim_wraper = dict()\n")
    with pytest.raises(ConfigError, match=r"unknown top-level config key 'optim_wraper' "
                                          r"\(closest: 'optim_wrapper'"):
        load_config(str(bad))
    bad.write_text(f"_base_ = ['{TOY}']\ntrain_dataloader = dict(dataset=dict(type='ToyRegDataset'))\n")
    with pytest.raises(ConfigError, match=r"train_dataloader\.dataset\.type: .*"
                                          r"'ToyRegressionDataset'"):
        load_config(str(bad))


def test_missing_required_argument_is_named():
    import tests.toy  # noqa: F401
    from unimm.registry import DATASETS
    from unimm.utils.build import check_arguments

    def needs(path, size=1):
        return path
    with pytest.raises(ConfigError, match=r"here: missing required argument 'path'"):
        check_arguments(needs, {'size': 2}, 'here')
    assert DATASETS.get('ToyRegressionDataset') is not None


def test_base_inheritance_and_cfg_options():
    cfg = load_config(TOY_GAN)
    assert cfg.model.type == 'ToyGenerator' and 'hidden' not in cfg.model  # _delete_
    assert cfg.train_dataloader.batch_size == 8  # inherited
    assert cfg.disc_optim_wrapper.optimizer.lr == 1e-3
    options = {'train_cfg.max_steps': 3, 'optim_wrapper.optimizer.lr': 0.5, 'model.dim': 4}
    cfg = load_config(TOY_GAN, options)
    assert cfg.train_cfg.max_steps == 3 and cfg.train_cfg.log_interval == 1
    assert cfg.optim_wrapper.optimizer.lr == 0.5 and cfg.model.dim == 4


@pytest.mark.slow
@pytest.mark.parametrize('decay', [0.0, 1.0])
def test_ema_export_follows_its_decay(tmp_path, decay):
    """decay 0: the EMA is the final weights; decay 1: it never leaves the initial ones."""
    from safetensors.torch import load_file
    from unimm.engine.runner import seed_everything
    from unimm.registry import MODELS
    run(TOY, tmp_path, '--cfg-options', 'train_cfg.max_steps=5', f'ema.decay={decay}')
    final = load_file(os.path.join(tmp_path, 'export', 'model.safetensors'))
    ema = load_file(os.path.join(tmp_path, 'export_ema', 'model.safetensors'))
    seed_everything(load_config(TOY).randomness.seed)
    initial = MODELS.build(load_config(TOY).model).state_dict()
    want = final if decay == 0.0 else initial
    assert all(torch.equal(ema[k], want[k]) for k in ema)
    assert not all(torch.equal(final[k], initial[k]) for k in final)


def test_deepspeed_config_bf16_skips_the_per_parameter_overflow_scan_unless_asked():
    from mmengine.config import Config
    from unimm.engine.runner import ds_config
    optim = {'optimizer': {'type': 'AdamW', 'lr': 1e-4, 'weight_decay': 0.05},
             'clip_grad': 1.0, 'accumulative_counts': 4}
    base = ds_config(Config({}), optim, 8, 100, 2, 'bf16')
    assert base['bf16'] == {'enabled': True, 'check_grad_overflow': False}
    assert base['gradient_accumulation_steps'] == 4 and base['gradient_clipping'] == 1.0
    asked = ds_config(Config({'deepspeed': {'config': {'bf16': {'check_grad_overflow': True}}}}),
                      optim, 8, 100, 2, 'bf16')
    assert asked['bf16'] == {'enabled': True, 'check_grad_overflow': True}
    assert ds_config(Config({}), optim, 8, 100, 2, 'fp32')['bf16']['enabled'] is False


def test_warmup_as_a_share_of_the_run_follows_the_run_length():
    from mmengine.config import Config
    from unimm.engine.runner import ds_config
    optim = {'optimizer': {'type': 'AdamW', 'lr': 1e-4}}

    def warmup(sched, max_steps):
        params = ds_config(Config({'param_scheduler': sched}), optim, 8, max_steps, 2,
                           'fp32')['scheduler']['params']
        return params['warmup_num_steps']
    assert warmup(dict(warmup_ratio=0.03), 5197) == 156  # LLaVA-1.5 fine-tuning: 3 % of 5197
    assert warmup(dict(warmup_ratio=0.03), 2 * 5197) == 312  # half the GPUs: twice the steps
    assert warmup(dict(warmup_steps=None, warmup_ratio=0.03), 2180) == 65
    assert warmup(dict(warmup_steps=40), 2180) == 40
    for bad, message in ((dict(warmup_steps=10, warmup_ratio=0.1), 'not both'),
                         (dict(warmup_ratio=1.5), r'not in \[0, 1\)'),
                         (dict(warmup_ration=0.1), "unknown key.*'warmup_ration'")):
        with pytest.raises(ConfigError, match=message):
            warmup(bad, 100)
