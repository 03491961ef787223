"""Tiny registered components the engine tests train (imported via custom_imports), and
the fault hooks that tests switch on through environment variables."""
import errno
import os
import signal
import time

import torch
from torch import nn

from unimm.engine import checkpoint as ckpt_module
from unimm.engine import logger as logger_module
from unimm.models.base import PretrainedMixin
from unimm.registry import DATASETS, MODELS


@DATASETS.register_module()
class ToyRegressionDataset(torch.utils.data.Dataset):
    """y = x @ w + noise, fixed by the seed; ``delay`` slows loading so tests can kill a run;
    the ``corrupt`` indices load as None (an unreadable sample)."""

    def __init__(self, length=256, dim=8, seed=0, delay=0.0, corrupt=()):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(length, dim, generator=g)
        self.y = self.x @ torch.randn(dim, 1, generator=g) + 0.1 * torch.randn(length, 1, generator=g)
        self.delay = delay
        self.corrupt = set(corrupt)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if self.delay:
            time.sleep(self.delay)
        if i in self.corrupt:
            return None
        return {'x': self.x[i], 'y': self.y[i], 'index': i}


@MODELS.register_module()
class ToyRegressor(PretrainedMixin, nn.Module):
    """An MLP with dropout (so RNG state matters for exact resume); NaN on chosen samples."""

    def __init__(self, dim=8, hidden=16, nan_indices=()):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(hidden, 1))
        self.nan_indices = set(nan_indices)

    def forward(self, batch):
        loss = nn.functional.mse_loss(self.net(batch['x']), batch['y'])
        if any(int(i) in self.nan_indices for i in batch['index']):
            loss = loss * float('nan')
        return {'loss': loss, 'abs_err': (self.net(batch['x']) - batch['y']).abs().mean().detach()}


def toy_adversarial_terms(batch, fake, discriminator):
    """``loss_adv`` through the (frozen) critic on (x, fake) and the detached
    ``disc_inputs`` of the toys' GAN generators."""
    return {'loss_adv': -discriminator(x=torch.cat([batch['x'], fake], 1)).mean() * 0.1,
            'disc_inputs': {'real': torch.cat([batch['x'], batch['y']], 1),
                            'fake': torch.cat([batch['x'], fake.detach()], 1)}}


@MODELS.register_module()
class ToyImageClassifier(PretrainedMixin, nn.Module):
    """Class logits from an image's mean colour: a model for image-folder datasets."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, batch):
        logits = self.head(batch['image'].mean(dim=(2, 3)))
        return {'loss': nn.functional.cross_entropy(logits, batch['label'])}


@MODELS.register_module()
class ToyGenerator(PretrainedMixin, nn.Module):
    """Maps x to a fake y; its adversarial loss goes through the (frozen) discriminator."""

    def __init__(self, dim=8):
        super().__init__()
        self.net = nn.Linear(dim, 1)

    def forward(self, batch, discriminator=None, step=0):
        fake = self.net(batch['x'])
        out = {'loss_rec': nn.functional.mse_loss(fake, batch['y'])}
        if discriminator is not None:
            out.update(toy_adversarial_terms(batch, fake, discriminator))
        return out


@MODELS.register_module()
class ToyDiscriminator(PretrainedMixin, nn.Module):
    """Hinge-loss critic on (x, y) pairs."""

    def __init__(self, dim=9):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 16), nn.GELU(), nn.Linear(16, 1))

    def forward(self, real=None, fake=None, x=None):
        if x is not None:
            return self.net(x)
        return {'loss_d': torch.relu(1 - self.net(real)).mean() + torch.relu(1 + self.net(fake)).mean()}


if os.environ.get('UNIMM_TEST_KILL_DURING_SAVE_AT'):
    # test hook: die (SIGKILL) half way through saving the checkpoint of the given step
    _kill_step = int(os.environ['UNIMM_TEST_KILL_DURING_SAVE_AT'])
    _save = ckpt_module.CheckpointManager.save

    def _dying_save(self, step, engines, runner_state, extra_tensors=None):
        if step == _kill_step:
            for name, engine in engines.items():
                engine.save_checkpoint(os.path.join(self.root, f'step_{step:08d}'), tag=name,
                                       save_latest=False)
            os.kill(os.getpid(), signal.SIGKILL)
        return _save(self, step, engines, runner_state, extra_tensors)

    ckpt_module.CheckpointManager.save = _dying_save


_log = logger_module.MetricLogger.log


def _signalling_log(self, step, scalars):
    """Test hook, UNIMM_TEST_SIGNAL_AT_STEP="STEP:SIGNAL[:RANK]" (read at each step, so one
    job of a multi-job launch can set it): the process of that rank (default 0) sends
    itself SIGNAL once step STEP is logged (a kill -9 or a scheduler's SIGTERM)."""
    _log(self, step, scalars)
    spec = os.environ.get('UNIMM_TEST_SIGNAL_AT_STEP')
    if spec:
        at, signum, *rank = map(int, spec.split(':'))
        if step == at and int(os.environ.get('RANK', 0)) == (rank[0] if rank else 0):
            os.kill(os.getpid(), signum)


logger_module.MetricLogger.log = _signalling_log

if os.environ.get('UNIMM_TEST_DISK_FULL_AT_SAVE'):
    # test hook: the disk fills up while the checkpoint of the given step is written, in
    # DeepSpeed's first torch.save (part of the file written, then ENOSPC)
    _full_step = int(os.environ['UNIMM_TEST_DISK_FULL_AT_SAVE'])
    _manager_save, _torch_save = ckpt_module.CheckpointManager.save, torch.save

    def _torch_save_on_full_disk(obj, f, *args, **kwargs):
        with open(f, 'wb') as out:
            out.write(bytes(4096))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    def _save_on_full_disk(self, step, *args, **kwargs):
        if step != _full_step:
            return _manager_save(self, step, *args, **kwargs)
        torch.save = _torch_save_on_full_disk
        try:
            return _manager_save(self, step, *args, **kwargs)
        finally:
            torch.save = _torch_save

    ckpt_module.CheckpointManager.save = _save_on_full_disk
