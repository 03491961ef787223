"""The ``compile`` config key: a SemHiTok stage-2 GAN run compiles its networks and the
discriminator, leaves the quantizers eager, keeps parameter names and checkpoints, and
trains step for step like the eager run. (The CPU uses the aot_eager backend: dynamo
capture and AOT autograd run for real; inductor's kernels are exercised on the GPU.)"""
import os

import pytest
import torch
from mmengine.config import Config

from tests.conftest import release_process_group
from tests.tiny_semhitok import config as semhitok_config
from tests.tiny_semhitok import images, stage1
from unimm.utils.build import ConfigError

NETWORKS = ['model.semantic_encoder', 'model.semantic_proj', 'model.semantic_decoder',
            'model.pixel_encoder', 'model.pixel_decoder', 'model.pixel_loss', 'discriminator.net']


class Images(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {'image': self.x[i]}


@pytest.fixture
def process_group():
    env = dict(os.environ)
    yield
    release_process_group(env)


def run_config(teacher, spc_folder, compile_cfg, zero_stage=2):
    return Config(dict(
        model=semhitok_config(teacher, stage='sghc', init_from=spc_folder, adv_weight=0.5),
        discriminator=dict(type='PatchGANDiscriminator', base_channels=8, num_layers=1,
                           norm='group', start_step=0),
        train_dataloader=dict(batch_size=4, num_workers=0,
                              dataset=dict(type='ShapesCaptionDataset')),  # replaced
        optim_wrapper=dict(optimizer=dict(lr=1e-3), clip_grad=1.0),
        disc_optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.0)),
        train_cfg=dict(max_steps=3, log_interval=1), log_cfg=dict(tensorboard=False),
        deepspeed=dict(zero_stage=zero_stage, precision='fp32'), compile=compile_cfg))


def trace(cfg, work_dir, batch, steps=4):
    """Loss dicts of ``steps`` steps (the global step advancing, as in training), the
    number of graphs dynamo had built after each, the final ids and weights."""
    from unimm.engine.runner import Runner
    runner = Runner(cfg, str(work_dir), dataset=Images(batch['image']))
    losses, graphs = [], []
    for step in range(steps):
        runner.state['global_step'] = step
        losses.append(runner.train_step(batch))
        graphs.append(torch._dynamo.utils.counters['stats']['unique_graphs'])
    runner.graphs = graphs
    module = runner.engine.module
    ids = module.eval().encode(batch['image'])
    return runner, losses, ids, {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.slow
def test_compiled_run_matches_eager_step_for_step(teacher, tmp_path, process_group):
    torch._dynamo.reset()
    stage1(teacher, tmp_path)
    batch = {'image': images(n=4, seed=2)}
    spc = str(tmp_path / 'spc')
    eager, eager_losses, eager_ids, eager_state = trace(
        run_config(teacher, spc, None), tmp_path / 'eager', batch)
    assert eager.compiled == []
    torch._dynamo.utils.counters.clear()
    recipe_like = dict(backend='aot_eager', dynamic=False)  # the recipes' dynamic=False
    runner, losses, ids, state = trace(run_config(teacher, spc, recipe_like),
                                       tmp_path / 'compiled', batch)

    assert runner.compiled == NETWORKS
    model = runner.engine.module
    assert model.pixel_quantizer._compiled_call_impl is None  # quantizers stay eager
    assert model.semantic_quantizer._compiled_call_impl is None
    assert model.pixel_encoder._compiled_call_impl is not None
    assert runner.graphs[0] >= 4  # really traced
    # no recompiles as the step advances (a forward taking the int step would, under the
    # recipe's dynamic=False, until dynamo's cache limit, then run eagerly)
    assert runner.graphs[-1] == runner.graphs[1]
    assert state.keys() == eager_state.keys()  # checkpoints keep their names

    for got, want in zip(losses, eager_losses):
        assert got.keys() == want.keys()
        for k in ('loss', 'loss_adv', 'disc/loss_disc'):
            assert got[k] == pytest.approx(want[k], rel=1e-4, abs=1e-6), k
    assert torch.equal(ids, eager_ids)
    for k, v in state.items():
        torch.testing.assert_close(v, eager_state[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.parametrize('value, zero, message', [
    (dict(mode='max-autotune', backnd='inductor'), 2, "unknown keys ['backnd']"),
    ('inductor', 2, 'is not True, None or a dict'),
    (True, 3, 'not supported with ZeRO-3'),
])
def test_compile_config_errors_are_named(value, zero, message):
    from unimm.engine.compile import compile_options
    with pytest.raises(ConfigError, match=message.replace('[', r'\[').replace(']', r'\]')):
        compile_options(value, zero)
    assert compile_options(None, 3) is None and compile_options(True, 2) == {}


class Pairs(torch.utils.data.Dataset):
    """Pre-tokenised caption / visual-id pairs (captions of different lengths, so the
    padded row width changes from batch to batch)."""
    def __init__(self, n=8, k=24, tokens=16):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, k, (n, tokens), generator=g)
        self.text = ['a red circle', 'two blue squares and a green triangle on the left',
                     '', 'a photo of a diamond'] * (n // 4)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {'visual_ids': self.ids[i], 'text': self.text[i]}


def generation_config(llm, compile_cfg):
    return Config(dict(
        model=dict(type='GenerationMLLM', llm=llm, num_semantic=8, sub_codes=3,
                   num_image_tokens=16, uncond_prob=0.0, gradient_checkpointing=True),
        train_dataloader=dict(batch_size=2, num_workers=0,
                              dataset=dict(type='ShapesCaptionDataset')),  # replaced
        optim_wrapper=dict(optimizer=dict(lr=1e-3), clip_grad=1.0),
        train_cfg=dict(max_steps=4, log_interval=1), log_cfg=dict(tensorboard=False),
        deepspeed=dict(zero_stage=2, precision='fp32'), compile=compile_cfg))


@pytest.mark.slow
def test_llm_decoder_layers_compile_and_train_like_eager(tmp_path, process_group):
    """The HF LLM's decoder layers are compiled one by one (the MLLM's and the decoder's own
    forwards, which build sequences and masks, stay eager), with gradient checkpointing and
    row widths that change per batch; the run matches the eager one step for step."""
    from unimm.engine.runner import Runner
    from unimm.apis.tiny_lm import make_tiny_lm
    llm = make_tiny_lm(str(tmp_path / 'llm'), arch='qwen2', hidden_size=32,
                       num_hidden_layers=2, num_attention_heads=2)
    data = Pairs()
    batches = [{k: [data[i][k] for i in (j, j + 1)] for k in ('visual_ids', 'text')}
               for j in (0, 2, 4)]
    for b in batches:
        b['visual_ids'] = torch.stack(b['visual_ids'])
    runs = {}
    torch._dynamo.reset()
    for name, cfg in (('eager', None), ('compiled', dict(backend='aot_eager'))):
        torch._dynamo.utils.counters.clear()
        torch.manual_seed(0)
        runner = Runner(generation_config(llm, cfg), str(tmp_path / name), dataset=data)
        losses = [runner.train_step(b)['loss'] for b in batches]
        runs[name] = runner, losses, {k: v.clone() for k, v in
                                      runner.engine.module.state_dict().items()}
    runner, losses, state = runs['compiled']
    assert runner.compiled == [
        'model.llm.model.embed_tokens', 'model.llm.model.layers.0', 'model.llm.model.layers.1',
        'model.llm.model.norm', 'model.llm.model.rotary_emb', 'model.llm.lm_head',
        'model.visual_head']
    model = runner.engine.module
    assert model._compiled_call_impl is None and model.llm.model._compiled_call_impl is None
    assert model.llm.model.layers[1]._compiled_call_impl is not None
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] >= 2  # really traced
    assert losses == pytest.approx(runs['eager'][1], rel=1e-5)
    assert state.keys() == runs['eager'][2].keys()
    for k, v in state.items():
        torch.testing.assert_close(v, runs['eager'][2][k], rtol=1e-4, atol=1e-6, msg=k)
