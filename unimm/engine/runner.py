"""The training runner: one code path on DeepSpeed for a CPU process (gloo) and one or
many GPUs (nccl). The model's forward returns its losses; the runner owns
optimisation, precision, distribution, logging and checkpoints."""
import contextlib
import inspect
import io
import logging
import math
import os
import random
import signal
import socket
import time
import warnings
from contextlib import nullcontext

import numpy as np
import torch

os.environ.setdefault('DS_ACCELERATOR', 'cuda' if torch.cuda.is_available() else 'cpu')
import deepspeed  # noqa: E402

from unimm.datasets.collate import collate_skip_corrupt  # noqa: E402
from unimm.datasets.samplers import length_grouped_indices  # noqa: E402
from unimm.engine.checkpoint import (CheckpointManager, CheckpointSaveError,  # noqa: E402
                                     convert_to_universal, resolve_resume, saved_world_size)
from unimm.engine.compile import compile_networks, compile_options  # noqa: E402
from unimm.engine.ema import EMA  # noqa: E402
from unimm.engine.logger import MetricLogger  # noqa: E402
from unimm.registry import DATASETS, MODELS  # noqa: E402
from unimm.utils.batch import move_batch, sum_losses  # noqa: E402
from unimm.utils.build import ConfigError  # noqa: E402


def _drop(logger_name, text):
    """Filter the records of ``logger_name`` that contain ``text``."""
    logging.getLogger(logger_name).addFilter(lambda record: text not in record.getMessage())


# start-up chatter that tells a user nothing: DeepSpeed reads the LR once while it builds the
# engine (before any step), and torch notes CUDA_HOME when it JIT-builds a CPU op
_drop('DeepSpeed', 'learning rate from scheduler before it has started')
_drop('torch.utils.cpp_extension', 'No CUDA runtime is found')


class NonFiniteLossError(RuntimeError):
    """Too many consecutive non-finite losses: the run stopped on purpose."""


def free_port():
    """A TCP port free now on this machine (for a launch's rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def init_distributed():
    """Join (or, single-process without a launcher, create) the process group."""
    if 'RANK' not in os.environ:
        os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()),
                          RANK='0', WORLD_SIZE='1', LOCAL_RANK='0')
    if not torch.distributed.is_initialized():
        # on a CPU DeepSpeed prints a line each time it loads its shared-memory comm op
        with contextlib.redirect_stdout(io.StringIO()):
            deepspeed.init_distributed(
                dist_backend='nccl' if torch.cuda.is_available() else 'gloo')
    if torch.cuda.is_available():
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
        torch.cuda.set_device(local_rank)
        return torch.device('cuda', local_rank)
    return torch.device('cpu')


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def scalars_of(out, extra=()):
    """The one-element entries of ``out`` (and ``extra`` (name, tensor) pairs) as floats,
    the tensors read back from the device in one copy."""
    tensors = [(k, v) for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1]
    tensors += list(extra)
    device = tensors[0][1].device if tensors else None
    values = torch.stack([v.detach().float().reshape(()).to(device)
                          for _, v in tensors]).tolist() if tensors else []
    logged = {k: float(v) for k, v in out.items() if isinstance(v, (int, float))}
    logged.update(zip((k for k, _ in tensors), values))
    return logged


SCHEDULER_KEYS = ('warmup_steps', 'warmup_ratio', 'min_lr_ratio')


def warmup_steps(sched, max_steps):
    """The warm-up in optimizer steps: ``warmup_steps``, or ``warmup_ratio`` of the run's
    ``max_steps`` (so it follows the batch size and the GPU count); at most one is set."""
    unknown = sorted(set(sched) - set(SCHEDULER_KEYS))
    if unknown:
        raise ConfigError(f'param_scheduler: unknown key(s) {unknown} (known: type, '
                          f'{", ".join(SCHEDULER_KEYS)})')
    steps, ratio = sched.get('warmup_steps'), sched.get('warmup_ratio')
    if steps is not None and ratio is not None:
        raise ConfigError('param_scheduler: set warmup_steps or warmup_ratio, not both (a '
                          'recipe that inherits warmup_steps sets it to None)')
    if ratio is None:
        return int(steps or 0)
    if not 0 <= ratio < 1:
        raise ConfigError(f'param_scheduler.warmup_ratio: {ratio} is not in [0, 1)')
    return round(ratio * max_steps)


def ds_config(cfg, optim, batch_size, max_steps, zero_stage, precision):
    """A DeepSpeed config from unimm's config keys; ``deepspeed.config`` overrides it."""
    opt = dict(optim.get('optimizer', {}))
    opt_type = opt.pop('type', 'AdamW')
    opt.pop('weight_decay', None)  # set per param group (2-D weights only)
    opt.setdefault('torch_adam', True)
    sched = dict(cfg.get('param_scheduler') or {})
    sched_type = sched.pop('type', 'WarmupCosine')
    warmup = warmup_steps(sched, max_steps)
    if sched_type == 'WarmupCosine':
        scheduler = {'type': 'WarmupCosineLR', 'params': {
            # DeepSpeed rejects 0 warm-up steps (and warms up over at least 2)
            'total_num_steps': max(max_steps, warmup + 1), 'warmup_num_steps': max(warmup, 1),
            'warmup_type': 'linear', 'warmup_min_ratio': 0.0,
            'cos_min_ratio': float(sched.get('min_lr_ratio', 0.0))}}
    elif sched_type == 'Constant':
        scheduler = {'type': 'WarmupLR', 'params': {
            'warmup_min_lr': 0.0, 'warmup_max_lr': opt['lr'], 'warmup_num_steps': max(warmup, 1),
            'warmup_type': 'linear'}}
    else:
        raise ConfigError(f'param_scheduler.type: {sched_type!r} is not one of '
                          "'WarmupCosine', 'Constant'")
    if precision not in ('fp32', 'bf16', 'fp16'):
        raise ConfigError(f"deepspeed.precision: {precision!r} is not 'fp32', 'bf16' or 'fp16'")
    clip = optim.get('clip_grad')
    config = {
        'train_micro_batch_size_per_gpu': batch_size,
        'gradient_accumulation_steps': int(optim.get('accumulative_counts', 1)),
        'gradient_clipping': float(clip) if clip else 0.0,
        'optimizer': {'type': opt_type, 'params': opt},
        'scheduler': scheduler,
        'zero_optimization': {'stage': zero_stage,
                              'stage3_gather_16bit_weights_on_model_save': True},
        # DeepSpeed's per-parameter inf/NaN scan of the gradients costs bf16 steps 10-25 %
        # (docs/performance.md); bf16 does not overflow like fp16 and the runner already
        # skips a step whose loss is not finite on some rank. deepspeed.config.bf16 restores it.
        'bf16': {'enabled': precision == 'bf16', 'check_grad_overflow': False},
        'fp16': {'enabled': precision == 'fp16'},
        'steps_per_print': 10**9,
        'wall_clock_breakdown': False,
    }
    return deep_update(config, dict(cfg.get('deepspeed', {}).get('config', {})))


def deep_update(base, override):
    for k, v in override.items():
        base[k] = deep_update(dict(base.get(k, {})), v) if isinstance(v, dict) else v
    return base


def fp32_parameters(model):
    """{full name: parameter} of the children each module names in ``fp32_modules``: frozen
    parts that must compute in fp32 whatever the training precision (token-id paths)."""
    out = {}
    for prefix, module in model.named_modules():
        for child in getattr(module, 'fp32_modules', ()):
            for name, p in getattr(module, child).named_parameters():
                full = '.'.join(filter(None, (prefix, child, name)))
                if p.requires_grad:
                    raise ConfigError(f'{full}: listed in fp32_modules but trainable')
                out[full] = p
    return out


def param_groups(module, weight_decay):
    """Weight decay on matrices only (norms, biases and embeddings' 1-D params excluded)."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{'params': decay, 'weight_decay': weight_decay},
              {'params': no_decay, 'weight_decay': 0.0}]
    return [g for g in groups if g['params']]


def epoch_loader(dataset, loader_opts, batch_size, epoch, seed, rank=0, world_size=1,
                 skip_batches=0):
    """This rank's batches of ``epoch`` from batch ``skip_batches`` on: a map dataset split
    like DistributedSampler (rank r takes items r, r + world_size, ... of the epoch's
    permutation, so the ranks' k-th batches together are the single-rank run's k-th batch
    of ``world_size`` times the size) or length-grouped; an iterable one sharded by rank
    and worker. ``loader_opts``: the config's train_dataloader keys besides dataset and
    batch_size (shuffle, drop_last, group_by_length, DataLoader arguments)."""
    opts = dict(loader_opts)
    shuffle = opts.pop('shuffle', True)
    drop_last = opts.pop('drop_last', True)
    collate = getattr(dataset, 'collate_fn', collate_skip_corrupt)
    if hasattr(dataset, 'set_epoch'):
        dataset.set_epoch(epoch)
    # its own generator: creating a loader iterator must not draw from the global RNG,
    # or a resumed run's dropout masks would differ from the uninterrupted run's
    opts['generator'] = torch.Generator().manual_seed(seed * 100003 + epoch)
    if isinstance(dataset, torch.utils.data.IterableDataset):
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size,
                                             collate_fn=collate, drop_last=drop_last, **opts)
        it = iter(loader)
        for _ in range(skip_batches):
            next(it, None)
        return it
    if opts.pop('group_by_length', False):
        if not hasattr(dataset, 'lengths'):
            raise ConfigError('train_dataloader.group_by_length: '
                              f'{type(dataset).__name__} has no `lengths` to group by')
        indices = length_grouped_indices(dataset.lengths, batch_size, world_size, rank, seed,
                                         epoch, drop_last)
    else:
        sampler = torch.utils.data.DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
            drop_last=drop_last)
        sampler.set_epoch(epoch)
        indices = list(sampler)
    n_batches = len(indices) // batch_size if drop_last else math.ceil(len(indices) / batch_size)
    indices = indices[skip_batches * batch_size:n_batches * batch_size]
    return iter(torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=indices,
                                            collate_fn=collate, drop_last=drop_last, **opts))


class Runner:
    """Builds everything a config names and trains it; see docs/architecture.md and
    docs/distributed.md (world sizes, global batch, resuming on another world size).

    ``dataset`` replaces the config's ``train_dataloader.dataset`` (benchmarks feed
    synthetic data); ``build_device`` builds the networks directly on that device (fast
    random initialisation of billion-parameter models) instead of the CPU."""

    def __init__(self, cfg, work_dir, resume=None, dataset=None, build_device=None):
        self.cfg = cfg
        self.work_dir = os.path.abspath(work_dir)
        self.device = init_distributed()
        self.rank = torch.distributed.get_rank()
        self.world_size = torch.distributed.get_world_size()
        train_cfg = dict(cfg.get('train_cfg') or {})
        self.seed = int((cfg.get('randomness') or {}).get('seed', 0))
        ds = dict(cfg.get('deepspeed') or {})
        self.zero_stage = int(ds.get('zero_stage', 2))
        self.precision = ds.get('precision', 'bf16' if torch.cuda.is_available() else 'fp32')
        self.dtype = {'fp32': torch.float32, 'bf16': torch.bfloat16,
                      'fp16': torch.float16}.get(self.precision)
        self.log_interval = int(train_cfg.get('log_interval', 10))
        self.max_nonfinite = int(train_cfg.get('max_consecutive_nonfinite', 5))
        ckpt = dict(cfg.get('checkpoint') or {})
        self.ckpt_interval = int(ckpt.get('interval', 1000))
        self.ckpts = CheckpointManager(os.path.join(self.work_dir, 'checkpoints'),
                                       max_keep=int(ckpt.get('max_keep', 3)))

        seed_everything(self.seed)  # identical initial weights on every rank
        with torch.device(build_device) if build_device is not None else nullcontext():
            self.model = MODELS.build(cfg.model, path='model')
            self.disc = MODELS.build(cfg.discriminator, path='discriminator') \
                if cfg.get('discriminator') else None
        seed_everything(self.seed + self.rank)

        self.loader_cfg = dict(cfg.train_dataloader)
        dataset_cfg = self.loader_cfg.pop('dataset')
        self.dataset = dataset if dataset is not None else DATASETS.build(
            dataset_cfg, path='train_dataloader.dataset')
        self.accum = int(cfg.optim_wrapper.get('accumulative_counts', 1))
        self.batch_size = self._micro_batch_size(train_cfg,
                                                 int(self.loader_cfg.pop('batch_size')))
        self.global_batch_size = self.batch_size * self.world_size * self.accum
        self.max_steps = self._max_steps(train_cfg)

        self.resumed_from, self.damaged = resolve_resume(resume, self.ckpts.root)
        for path, bad in self.damaged:
            which = f'1 file differs from its manifest: {bad[0]}' if len(bad) == 1 else \
                f'{len(bad)} files differ from its manifest, e.g. {bad[0]}'
            warnings.warn(f'--resume auto: {path} is damaged ({which}); skipped for an older '
                          'checkpoint')
        self.saved_world_size = saved_world_size(self.resumed_from) if self.resumed_from \
            else self.world_size
        stages = {'model': self.zero_stage, 'discriminator': min(self.zero_stage, 2)}
        # ZeRO >= 1 partitions optimizer states over the ranks that saved them: a resume on
        # another world size loads DeepSpeed's universal checkpoint instead
        universal = {name for name, stage in stages.items()
                     if stage >= 1 and self.saved_world_size != self.world_size}
        if not self.disc:
            universal.discard('discriminator')
        load_universal = {'checkpoint': {'load_universal': True}}

        # DeepSpeed casts every parameter to bf16/fp16, frozen ones too: keep fp32 copies
        keep_fp32 = {} if self.precision == 'fp32' else {
            n: p.detach().clone() for n, p in fp32_parameters(self.model).items()}
        if keep_fp32 and self.zero_stage == 3:  # ZeRO-3 partitions frozen parameters too
            warnings.warn(f'ZeRO-3: the {len(keep_fp32)} frozen parameters of fp32_modules '
                          f'compute in {self.precision}; their token ids can differ from fp32 '
                          'ones (ZeRO <= 2 keeps them in fp32)')
            keep_fp32 = {}
        optim = dict(cfg.optim_wrapper)
        wd = float(optim.get('optimizer', {}).get('weight_decay', 0.0))
        self.engine, *_ = deepspeed.initialize(
            model=self.model, model_parameters=param_groups(self.model, wd),
            config=deep_update(ds_config(cfg, optim, self.batch_size, self.max_steps,
                                         stages['model'], self.precision),
                               load_universal if 'model' in universal else {}))
        self.engines = {'model': self.engine}
        for name, p in fp32_parameters(self.model).items():
            if name in keep_fp32:
                p.data = keep_fp32[name].to(p.device)
        if self.disc is not None:
            doptim = dict(cfg.get('disc_optim_wrapper') or optim)
            dwd = float(doptim.get('optimizer', {}).get('weight_decay', 0.0))
            # the small discriminator stays at ZeRO <= 2 (its raw module is used in the G step)
            self.disc_engine, *_ = deepspeed.initialize(
                model=self.disc, model_parameters=param_groups(self.disc, dwd),
                config=deep_update(ds_config(cfg, doptim, self.batch_size, self.max_steps,
                                             stages['discriminator'], self.precision),
                                   load_universal if 'discriminator' in universal else {}))
            self.engines['discriminator'] = self.disc_engine
            self._disc_trainable = [p for p in self.disc.parameters() if p.requires_grad]
            self._disc_takes_step = 'step' in inspect.signature(self.disc.forward).parameters
        self._forward_kwargs = set(inspect.signature(self.model.forward).parameters)
        options = compile_options(cfg.get('compile'), self.zero_stage)
        self.compiled = [] if options is None else [
            name for net, prefix in ((self.model, 'model.'), (self.disc, 'discriminator.'))
            if net is not None for name in compile_networks(net, options, prefix)]

        self.ema = None
        if cfg.get('ema'):
            if self.zero_stage == 3:
                raise ConfigError('ema: EMA needs full weights on each rank; use ZeRO <= 2')
            self.ema = EMA(self.engine.module, decay=float(cfg.ema.get('decay', 0.999)))

        self.state = {'global_step': 0, 'epoch': 0, 'batches_in_epoch': 0,
                      'nonfinite_total': 0, 'nonfinite_streak': 0, 'skipped_in_epoch': 0,
                      'skipped_total': 0}
        if self.resumed_from:
            if universal:
                convert_to_universal(self.resumed_from, sorted(universal))
            self.state, extras = self.ckpts.load(self.resumed_from, self.engines, universal)
            self._rescale_epoch_position()
            if self.ema is not None and 'ema' in extras:
                self.ema.load_state_dict(extras['ema'])
        self._stop_signal = None
        self.logger = MetricLogger(self.work_dir, self.max_steps, enabled=False)  # until train()

    def _micro_batch_size(self, train_cfg, per_rank):
        """Per-rank batch: ``train_dataloader.batch_size``, or, when
        ``train_cfg.global_batch_size`` is set, that / (world size x accumulative_counts),
        so runs on any number of ranks step on the same samples."""
        total = train_cfg.get('global_batch_size')
        if total is None:
            return per_rank
        total, ways = int(total), self.world_size * self.accum
        if total % ways:
            raise ConfigError(f'train_cfg.global_batch_size: {total} is not divisible by world '
                              f'size {self.world_size} x optim_wrapper.accumulative_counts '
                              f'{self.accum}')
        return total // ways

    def _rescale_epoch_position(self):
        """A checkpoint of another world size / batch: keep the epoch position in samples."""
        saved_ranks = int(self.state.get('world_size', self.saved_world_size))
        saved = saved_ranks * int(self.state.get('batch_size', self.batch_size))
        now = self.world_size * self.batch_size
        samples = self.state['batches_in_epoch'] * saved
        if samples % now:
            warnings.warn(f'resuming at {samples} samples into epoch {self.state["epoch"]}, not '
                          f'a multiple of the new {now} samples per micro-step: '
                          f'{samples % now} samples of the epoch are skipped')
        self.state['batches_in_epoch'] = samples // now
        if saved_ranks != self.world_size and \
                isinstance(self.dataset, torch.utils.data.IterableDataset):
            warnings.warn('streamed (iterable) data is split over ranks by shard: with another '
                          'world size the rest of this epoch is not the uninterrupted order')

    # ---------------------------------------------------------------- data
    def _max_steps(self, train_cfg):
        if 'max_steps' in train_cfg:
            return int(train_cfg['max_steps'])
        if 'max_epochs' in train_cfg and hasattr(self.dataset, '__len__'):
            per_rank = len(self.dataset) // self.world_size
            return int(train_cfg['max_epochs']) * max(per_rank // self.batch_size // self.accum, 1)
        raise ConfigError('train_cfg: give max_steps (or max_epochs for a sized dataset)')

    def _epoch_loader(self, epoch, skip_batches):
        """A DataLoader for ``epoch`` that starts after ``skip_batches`` batches."""
        return epoch_loader(self.dataset, self.loader_cfg, self.batch_size, epoch, self.seed,
                            self.rank, self.world_size, skip_batches)

    def _batches(self):
        """Yield batches forever from the resume point, tracking epoch and position."""
        while True:
            loader = self._epoch_loader(self.state['epoch'], self.state['batches_in_epoch'])
            for batch in loader:
                self.state['batches_in_epoch'] += 1
                yield batch
            skipped = self.state['skipped_in_epoch']
            if hasattr(self.dataset, '__len__'):  # ranks end sized epochs together
                skipped = self._all_sum(skipped)
            if skipped:
                self.logger.message(f'epoch {self.state["epoch"]}: skipped {int(skipped)} '
                                    'corrupt or unreadable samples')
                self.logger.event(self.state['global_step'], epoch=self.state['epoch'],
                                  skipped_samples=int(skipped))
            self.state.update(epoch=self.state['epoch'] + 1, batches_in_epoch=0,
                              skipped_in_epoch=0)

    # ---------------------------------------------------------------- helpers
    def _all_sum(self, value):
        t = torch.tensor(float(value), device=self.device)
        torch.distributed.all_reduce(t)
        return t.item()

    def _all_true(self, flag):
        """Whether ``flag`` holds on every rank: one decision all ranks take together."""
        if self.world_size == 1:
            return bool(flag)
        flag = torch.as_tensor(flag, device=self.device).float().reshape(1)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item())

    def _all_finite(self, loss):
        return self._all_true(torch.isfinite(loss.detach().float()).all())

    def _model_forward(self, batch):
        kwargs = {}
        if 'step' in self._forward_kwargs:
            kwargs['step'] = self.state['global_step']
        if self.disc is not None:
            kwargs['discriminator'] = self.disc_engine.module
        return self.engine(batch, **kwargs)

    def train_step(self, batch):
        """One micro-step (forward, backward, optimizer step of the model and, for a GAN,
        the discriminator) on a host ``batch``, outside the training loop (benchmarks).
        Returns the step's scalars, or None when a non-finite loss skipped it."""
        return self._micro_step(move_batch(batch, self.device, self.dtype))

    def _micro_step(self, batch):
        """Forward/backward/step of the model (and discriminator). False if skipped."""
        if self.disc is not None:
            for p in self._disc_trainable:
                p.requires_grad_(False)
        out = self._model_forward(batch)
        if self.disc is not None:
            for p in self._disc_trainable:
                p.requires_grad_(True)
        loss = sum_losses(out, type(self.model).__name__)
        if not self._all_finite(loss):
            return None
        self.engine.backward(loss)
        self.engine.step()
        logged = scalars_of(out, [('loss', loss)])
        disc_inputs = out.get('disc_inputs')
        if self.disc is not None and disc_inputs is not None:
            dkw = {'step': self.state['global_step']} if self._disc_takes_step else {}
            dout = self.disc_engine(**disc_inputs, **dkw)
            dloss = sum_losses(dout, type(self.disc).__name__)
            if self._all_finite(dloss):
                self.disc_engine.backward(dloss)
                self.disc_engine.step()
                logged.update({f'disc/{k}': v for k, v in scalars_of(dout).items()})
            else:  # the generator stepped; only the discriminator's step is skipped
                self.state['nonfinite_total'] += 1
                self.logger.event(self.state['global_step'], nonfinite_disc_loss=True)
        return logged

    def _reduce_mean(self, records):
        keys = sorted({k for r in records for k in r})
        t = torch.tensor([np.mean([r[k] for r in records if k in r]) for k in keys],
                         device=self.device, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return dict(zip(keys, (t / self.world_size).tolist()))

    def _on_signal(self, signum, frame):
        self._stop_signal = signum

    def save_checkpoint(self):
        self.state.update(world_size=self.world_size, batch_size=self.batch_size)
        extras = {'ema': self.ema.state_dict()} if self.ema is not None else None
        try:
            path = self.ckpts.save(self.state['global_step'], self.engines, self.state, extras)
        except CheckpointSaveError as err:
            self.logger.event(self.state['global_step'], checkpoint_failed=str(err))
            raise
        self.logger.event(self.state['global_step'], checkpoint=path)
        return path

    # ---------------------------------------------------------------- train
    def train(self):
        self.logger = MetricLogger(self.work_dir, self.max_steps, self.state['global_step'],
                                   enabled=self.rank == 0,
                                   tensorboard=(self.cfg.get('log_cfg') or {}).get(
                                       'tensorboard', True))
        self.logger.message(f'{self.world_size} rank(s) x batch {self.batch_size} x '
                            f'{self.accum} accumulation = global batch {self.global_batch_size}')
        if self.compiled:
            self.logger.message(f'torch.compile: {", ".join(self.compiled)}')
        for path, bad in self.damaged:
            self.logger.event(self.state['global_step'], damaged_checkpoint=path, files=bad)
        if self.resumed_from:
            self.logger.message(f'resumed from {self.resumed_from} (step '
                                f'{self.state["global_step"]}, saved on {self.saved_world_size} '
                                'rank(s))')
        previous = signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self._loop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.logger.close()
        return self.state

    def _loop(self):
        batches = self._batches()
        window, t0, samples = [], time.time(), 0
        while self.state['global_step'] < self.max_steps:
            batch = next(batches)
            skipped = int(batch.pop('num_skipped', 0))
            self.state['skipped_in_epoch'] += skipped
            self.state['skipped_total'] += skipped
            # a rank whose samples were all corrupt skips the micro-step, and so do the
            # others with it: ranks that stepped alone would pair the wrong collectives
            if not self._all_true(any(torch.is_tensor(v) for v in batch.values())):
                continue
            samples += next(v.shape[0] for v in batch.values() if torch.is_tensor(v))
            logged = self._micro_step(move_batch(batch, self.device, self.dtype))
            if logged is None:
                self._on_nonfinite()
                continue
            self.state['nonfinite_streak'] = 0
            window.append(logged)
            if len(window) < self.accum:
                continue
            self.state['global_step'] += 1
            if self.ema is not None:
                self.ema.update(self.engine.module)
            step = self.state['global_step']
            if step % self.log_interval == 0 or step == self.max_steps:
                scalars = self._reduce_mean(window)
                dt = max(time.time() - t0, 1e-9)
                scalars.update(lr=self.engine.get_lr()[0],
                               samples_per_s=self._all_sum(samples) / dt,
                               epoch=self.state['epoch'])
                self.logger.log(step, scalars)
                t0, samples = time.time(), 0
            window = []
            self.logger.advance()
            if step % self.ckpt_interval == 0 or step == self.max_steps:
                self.save_checkpoint()
            if self._all_sum(self._stop_signal is not None):
                self._stop_on_signal()
        self.export()

    def _on_nonfinite(self):
        self.state['nonfinite_total'] += 1
        self.state['nonfinite_streak'] += 1
        step = self.state['global_step']
        self.logger.event(step, nonfinite_loss=True, total=self.state['nonfinite_total'])
        if self.state['nonfinite_streak'] >= self.max_nonfinite:
            path = self.save_checkpoint()
            raise NonFiniteLossError(
                f'{self.state["nonfinite_streak"]} consecutive non-finite losses after step '
                f'{step}: stopping. The weights from before them are saved in {path}; lower '
                'the learning rate or check the data, then resume with --resume auto.')
        self.logger.message(f'step {step}: non-finite loss, step skipped '
                            f'({self.state["nonfinite_total"]} so far)')

    def _stop_on_signal(self):
        path = self.save_checkpoint()
        self.logger.message(f'received signal {self._stop_signal}: checkpoint saved to {path}; '
                            'resume with --resume auto')
        self.logger.close()
        raise SystemExit(128 + int(self._stop_signal or signal.SIGTERM))

    def export(self):
        """Final weights as safetensors (via save_pretrained where the model has it), written
        by rank 0; the other ranks only take part in the gathering."""
        folders = {'export': self._full_state_dict()}
        if self.ema is not None and self.rank == 0:
            folders['export_ema'] = self.ema.merged_state_dict(self.engine.module)
        if self.rank == 0:
            for name, state in folders.items():
                folder = os.path.join(self.work_dir, name)
                save = getattr(self.engine.module, 'save_pretrained', None)
                if save is None:
                    raise ConfigError(f'{type(self.model).__name__} has no save_pretrained: '
                                      'mix in unimm.models.base.PretrainedMixin')
                save(folder, state_dict=state)
                self.logger.message(f'exported weights to {folder}')
        torch.distributed.barrier()

    def _full_state_dict(self):
        """Collective: the full weights on rank 0 (trainable ones from the fp32 master copy,
        frozen ones and buffers as the module holds them), None on the other ranks. One
        tensor is gathered at a time (a ZeRO-3 parameter, or a ZeRO >= 1 master copy), so
        besides rank 0's CPU copy no rank holds more than one gathered tensor."""
        from deepspeed.utils import safe_get_full_fp32_param
        module = self.engine.module
        params = dict(module.named_parameters())  # one name per tied parameter
        out = {} if self.rank == 0 else None
        for name, tensor in module.state_dict(keep_vars=True).items():
            p = params.get(name)
            # a collective at ZeRO >= 1 (None at ZeRO-0 fp32, which has no master copy)
            full = safe_get_full_fp32_param(p) if p is not None and p.requires_grad else None
            if full is not None:
                if out is not None:
                    out[name] = full.detach().cpu().clone()
                del full
                continue
            # ZeRO-3 partitions frozen parameters too: gather this one on every rank
            with deepspeed.zero.GatheredParameters([tensor], enabled=hasattr(tensor, 'ds_id')):
                if out is not None:
                    out[name] = tensor.detach().cpu().clone()
        return out
