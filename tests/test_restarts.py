"""Dead-code restarts survive the optimizer. DeepSpeed keeps an fp32 master copy of every
trainable parameter (ZeRO 1/2/3, and ZeRO-0 in bf16) and copies it back after each step,
so a restart written into a parameter would be undone. Each quantizer with restarts is
trained here for one step through the real ``Runner`` at learning rate 0 (the optimizer
moves nothing itself), at every ZeRO stage in fp32 and bf16: the restarted rows must then
hold (jittered copies of) the batch vectors they jumped to, in the module and in the
export."""
import json
import os

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from safetensors.torch import load_file
from torch import nn

from tests.conftest import release_process_group
from unimm.models.base import PretrainedMixin
from unimm.registry import DATASETS, MODELS

pytestmark = pytest.mark.slow

DIM, TOKENS, GROUPS = 8, 16, 4


@DATASETS.register_module(force=True)
class ToyPatchDataset(torch.utils.data.Dataset):
    """Random patch features with a semantic id per patch (ids 0..GROUPS-1)."""

    def __init__(self, length=16):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(length, TOKENS, DIM, generator=g)
        self.sem = torch.randint(GROUPS, (length, TOKENS), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {'x': self.x[i], 'sem': self.sem[i]}


@MODELS.register_module(force=True)
class ToyQuantizerModel(PretrainedMixin, nn.Module):
    """A linear map to ``z`` and a quantizer; the loss is the quantizer's."""

    def __init__(self, quantizer):
        super().__init__()
        self.proj = nn.Linear(DIM, DIM)
        self.quantizer = MODELS.build(quantizer)

    def forward(self, batch):
        z = self.proj(batch['x'])
        kwargs = {'semantic_ids': batch['sem']} if 'Hierarchical' in \
            type(self.quantizer).__name__ else {}
        out = self.quantizer(z, **kwargs)
        return {'loss': out.loss + 0 * z.float().sum(),
                'restarted': torch.as_tensor(out.stats['dead_restarted'], dtype=torch.float)}


QUANTIZERS = {
    'sghc_loss': dict(type='HierarchicalCodebook', num_semantic_codes=GROUPS, sub_codes=12,
                      dim=DIM, update='loss'),
    'sghc_ema': dict(type='HierarchicalCodebook', num_semantic_codes=GROUPS, sub_codes=12,
                     dim=DIM, update='ema'),
    'spc': dict(type='SemanticPriorityCodebook', num_codes=64, dim=DIM, kmeans_init=False,
                dead_code_threshold=1.0),
    'vq': dict(type='VectorQuantizer', num_codes=64, dim=DIM, dead_code_threshold=0.1),
}


@pytest.fixture
def in_process():
    env = dict(os.environ)
    yield
    release_process_group(env)


def code_table(quantizer):
    """The code vectors as the quantizer searches them, [num_codes, DIM] fp32."""
    ids = torch.arange(quantizer.num_codes)
    return F.normalize(quantizer.lookup(ids).float(), dim=-1)


def matched_rows(table, vectors, tol):
    """Rows of ``table`` within ``tol`` (max abs) of one of ``vectors``."""
    gap = (table[:, None, :] - vectors[None]).abs().amax(-1).amin(-1)
    return gap < tol


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
@pytest.mark.parametrize('zero', [0, 1, 2, 3])
@pytest.mark.parametrize('name', sorted(QUANTIZERS))
def test_restarted_rows_survive_the_optimizer_step(name, zero, precision, tmp_path,
                                                    in_process):
    import deepspeed
    from unimm.engine.runner import Runner
    cfg = Config(dict(
        model=dict(type='ToyQuantizerModel', quantizer=QUANTIZERS[name]),
        train_dataloader=dict(batch_size=16, num_workers=0, shuffle=False,
                              dataset=dict(type='ToyPatchDataset')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.0, weight_decay=0.0)),
        param_scheduler=dict(type='Constant', warmup_steps=0),
        train_cfg=dict(max_steps=1, log_interval=1),
        deepspeed=dict(zero_stage=zero, precision=precision),
        log_cfg=dict(tensorboard=False), randomness=dict(seed=0)))
    runner = Runner(cfg, tmp_path)
    module = runner.engine.module
    with deepspeed.zero.GatheredParameters(list(module.parameters()), enabled=zero == 3):
        before = code_table(module.quantizer)
    runner.train()  # one step: forward (restarts), backward, engine.step(), export
    with deepspeed.zero.GatheredParameters(list(module.parameters()), enabled=zero == 3):
        after = code_table(module.quantizer)
        batch = runner.dataset.x.to(module.proj.weight.dtype)
        z = F.normalize(module.proj(batch).float(), dim=-1).reshape(-1, DIM)
    tol = 0.08  # a restart is a jittered copy (noise std 0.01 per component)
    restarted = matched_rows(after, z, tol) & ~matched_rows(before, z, tol)
    with open(os.path.join(tmp_path, 'log.jsonl')) as f:
        logged = [json.loads(line)['restarted'] for line in f if '"restarted"' in line]
    # EMA tables also move a code used by one patch onto it, hence at least
    assert logged[-1] > 0 and restarted.sum() >= logged[-1], (restarted.sum(), logged)
    # the export (written from DeepSpeed's master weights) holds the same table
    exported = ToyQuantizerModel.from_pretrained(os.path.join(tmp_path, 'export'))
    assert torch.allclose(code_table(exported.quantizer), after, atol=tol)
    assert set(load_file(os.path.join(tmp_path, 'export', 'model.safetensors'))) == \
        set(exported.state_dict())
