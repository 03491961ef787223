"""Checkpoints that survive a kill mid-save: a checkpoint counts only once its
`complete.json` marker exists, and the marker is written last, atomically. The marker
lists every file's size and SHA-256: ``--resume auto`` skips a damaged checkpoint (a
truncated or altered file) for the newest intact one, and says so.

A checkpoint records the world size that saved it. Resumed on another world size, the
ZeRO-partitioned engines (stage >= 1) go through DeepSpeed's universal checkpoint:
``deepspeed.checkpoint.ds_to_universal`` converts ``<ckpt>/<engine>`` once (rank 0) into
``<ckpt>/universal/<engine>``, and the engines, initialised with
``checkpoint.load_universal``, load that; buffers (EMA codebooks, ...) and frozen weights,
which a universal checkpoint does not carry, come from the saved model states.

DeepSpeed writes its engine states as pickles (``torch.save``). Every load of them here,
DeepSpeed's own included, unpickles with ``weights_only=True`` (`weights_only_loads`):
tensors, containers and DeepSpeed's four state classes, nothing that could run code."""
import contextlib
import glob
import hashlib
import json
import os
import pickle
import random
import re
import shutil
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.torch import load_file, save_file

MARKER = 'complete.json'
UNIVERSAL = 'universal'


def _deepspeed_state_classes():
    """The classes besides tensors and containers that DeepSpeed 0.19.8 pickles into its
    checkpoints: the ZeRO stage, the loss scaler, ZeRO-1/2 fragment addresses."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address
    return [ZeroStageEnum, LossScaler, DynamicLossScaler, fragment_address]


@contextlib.contextmanager
def weights_only_loads():
    """Inside, every ``torch.load`` unpickles with ``weights_only=True``, also DeepSpeed's,
    which pass ``weights_only=False`` (torch's TORCH_FORCE_WEIGHTS_ONLY_LOAD overrides
    them); only DeepSpeed's own state classes are allowed besides tensors and containers."""
    saved = os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD')
    os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = '1'
    try:
        with torch.serialization.safe_globals(_deepspeed_state_classes()):
            yield
    finally:
        if saved is None:
            os.environ.pop('TORCH_FORCE_WEIGHTS_ONLY_LOAD', None)
        else:
            os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = saved


def refused_pickle(path, err):
    """The error for a checkpoint file that holds more than weights (``err``: torch's)."""
    found = re.search(r'GLOBAL ([\w.]+)', str(err))
    what = f'it names {found.group(1)}' if found else str(err).strip().splitlines()[-1]
    return RuntimeError(
        f'{path}: refusing to unpickle a checkpoint file that holds more than tensors and '
        f"DeepSpeed's state ({what}). unimm never writes such a file; do not resume from "
        'this checkpoint unless you know where it came from')


def _atomic_write_json(path, obj):
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def complete_checkpoints(root):
    """[(step, path)] of complete checkpoints under ``root``, oldest first."""
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        marker = os.path.join(root, name, MARKER)
        if os.path.isfile(marker):
            with open(marker) as f:
                found.append((json.load(f)['global_step'], os.path.join(root, name)))
    return sorted(found)


def sha256(path, chunk=1 << 24):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def manifest(path):
    """{relative file name: [size, sha256]} of every file under checkpoint ``path``."""
    files = {}
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            files[os.path.relpath(full, path)] = [os.path.getsize(full), sha256(full)]
    return files


def damaged_files(path):
    """Files of checkpoint ``path`` missing or differing in size or SHA-256 from its
    marker's manifest (checkpoints saved before manifests existed are not checked)."""
    with open(os.path.join(path, MARKER)) as f:
        listed = json.load(f).get('files', {})
    bad = []
    for name, (size, digest) in sorted(listed.items()):
        full = os.path.join(path, name)
        if not os.path.isfile(full) or os.path.getsize(full) != size or sha256(full) != digest:
            bad.append(name)
    return bad


def _on_rank0(fn):
    """``fn()`` on rank 0, its result broadcast to every rank (one decision for all)."""
    box = [fn() if not torch.distributed.is_initialized()
           or torch.distributed.get_rank() == 0 else None]
    if torch.distributed.is_initialized():
        torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def resolve_resume(resume, root):
    """(checkpoint, damaged). ``auto``: the newest complete checkpoint under root whose
    files match its manifest (None if there is none); ``damaged`` lists the newer ones
    skipped, as (path, bad files). A path: that checkpoint, which must be complete and
    intact. Rank 0 verifies, every rank gets its answer."""
    if resume in (None, False, ''):
        return None, []
    if resume == 'auto':
        def newest_intact():
            damaged = []
            for _, path in reversed(complete_checkpoints(root)):
                bad = damaged_files(path)
                if not bad:
                    return path, damaged
                damaged.append((path, bad))
            return None, damaged
        return tuple(_on_rank0(newest_intact))
    path = os.path.abspath(resume)
    if not os.path.isfile(os.path.join(path, MARKER)):
        raise FileNotFoundError(f'{path} is not a complete unimm checkpoint (no {MARKER}); '
                                f'complete ones under {root}: {complete_checkpoints(root)}')
    bad = _on_rank0(lambda: damaged_files(path))
    if bad:
        raise RuntimeError(f'{path} is damaged: {bad[:5]} differ from its manifest; resume '
                           "from another checkpoint (--resume auto takes the newest intact one)")
    return path, []


def rng_state():
    state = {'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {'numpy': [np_state[0], np_state[1].tolist(), *np_state[2:]],
            'python': [py_state[0], list(py_state[1]), py_state[2]]}
    return state, meta


def set_rng_state(tensors, meta):
    torch.set_rng_state(tensors['torch'])
    if 'cuda' in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors['cuda'])
    kind, keys, pos, has_gauss, gauss = meta['numpy']
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = meta['python']
    random.setstate((version, tuple(internal), gauss_next))


def saved_world_size(path):
    """The data-parallel world size that saved checkpoint ``path`` (its marker's record;
    for checkpoints from before it was recorded, the number of per-rank RNG files)."""
    with open(os.path.join(path, MARKER)) as f:
        marker = json.load(f)
    if 'world_size' in marker:
        return int(marker['world_size'])
    return len(glob.glob(os.path.join(path, 'rng_rank*.safetensors')))


def _broadcast_error(message):
    """Rank 0's error message (or None) on every rank, so all ranks fail together."""
    box = [message]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def convert_to_universal(path, names, workers=1):
    """Collective: make ``<path>/universal/<name>`` (DeepSpeed universal format) for each
    engine ``name`` of checkpoint ``path`` (rank 0 converts, once); return its root."""
    root = os.path.join(path, UNIVERSAL)
    error = None
    if torch.distributed.get_rank() == 0 and not os.path.isfile(os.path.join(root, MARKER)):
        try:
            from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal
            tmp = f'{root}.tmp{os.getpid()}'
            shutil.rmtree(tmp, ignore_errors=True)
            for name in names:
                with weights_only_loads():
                    ds_to_universal(SimpleNamespace(
                        input_folder=os.path.join(path, name),
                        output_folder=os.path.join(tmp, name),
                        num_extract_workers=workers, num_merge_workers=workers,
                        keep_temp_folder=False, strict=True, inject_missing_state=True))
            _atomic_write_json(os.path.join(tmp, MARKER), {'engines': list(names)})
            shutil.rmtree(root, ignore_errors=True)
            os.replace(tmp, root)
        except Exception as err:  # reported on every rank below
            error = f'{type(err).__name__}: {err}'
    error = _broadcast_error(error)
    if error:
        raise RuntimeError(f'cannot convert {path} to a DeepSpeed universal checkpoint for a '
                           f'different world size ({error}); resume on the world size that '
                           'saved it, or start from its exported weights')
    torch.distributed.barrier()
    return root


def restore_unpartitioned_state(engine, path):
    """Buffers (and, below ZeRO-3, frozen weights) from DeepSpeed's saved model states of
    ``path`` into ``engine.module``: a universal load restores only optimised weights."""
    files = sorted(glob.glob(os.path.join(path, '*model_states.pt')))
    if not files:
        raise FileNotFoundError(f'no DeepSpeed model states in {path}')
    try:
        with weights_only_loads():
            saved = torch.load(files[0], map_location='cpu', weights_only=True)['module']
    except pickle.UnpicklingError as err:
        raise refused_pickle(files[0], err) from err
    module = engine.module
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    params = dict(module.named_parameters())
    partitioned = engine.zero_optimization_partition_weights()
    keep = {k: v for k, v in saved.items() if k not in trainable and not (
        partitioned and k in params)}
    unexpected = module.load_state_dict(keep, strict=False).unexpected_keys
    if unexpected:
        raise RuntimeError(f'{path}: saved state not in the model: {unexpected[:5]}')


def fix_universal_optimizer_state(engine, groups):
    """Undo two slips of DeepSpeed 0.19.8's ZeRO-3 universal load: every param group gets
    the first group's settings (``groups``: each group's own, taken before the load), and
    all groups share ONE ``step`` tensor, which the optimizer then increments once per
    group per step (wrong bias correction from the second group on)."""
    if engine.zero_optimization_partition_weights():
        for group, own in zip(engine.optimizer.param_groups, groups):
            group.update(own)
    for state in engine.optimizer.optimizer.state.values():
        if torch.is_tensor(state.get('step')):
            state['step'] = state['step'].clone()


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written (a full disk, an I/O error); the complete
    checkpoints saved before it are untouched."""


class CheckpointManager:
    """Saves/loads DeepSpeed engines plus the runner's own state under ``root/step_N``."""

    def __init__(self, root, max_keep=3):
        self.root = root
        self.max_keep = max_keep

    def save(self, step, engines, runner_state, extra_tensors=None):
        """Collective: every rank calls it. ``engines`` maps a name to an engine. A write
        that fails (OSError: disk full, ...) raises CheckpointSaveError naming the newest
        complete checkpoint, which the failed save never touched."""
        path = os.path.join(self.root, f'step_{step:08d}')
        try:
            self._save(step, path, engines, runner_state, extra_tensors)
        except OSError as err:
            single = torch.distributed.get_world_size() == 1
            if single:  # give back the space the partial save took
                shutil.rmtree(path, ignore_errors=True)
            done = [(s, p) for s, p in complete_checkpoints(self.root) if p != path]
            newest = (f'the newest complete checkpoint, {done[-1][1]} (step {done[-1][0]}), '
                      'is untouched and --resume auto continues from it') if done else \
                'no checkpoint was complete before it: a restart begins at step 0'
            partial = 'removed' if single else \
                'ignored by --resume and replaced by the next save of that step'
            raise CheckpointSaveError(
                f'could not write checkpoint {path} on rank {torch.distributed.get_rank()}: '
                f'{err}. The incomplete checkpoint is {partial}; {newest}. Free space (or fix '
                'the file system), then resume with --resume auto.') from err
        if torch.distributed.get_rank() == 0:
            self._prune()
        torch.distributed.barrier()
        return path

    def _save(self, step, path, engines, runner_state, extra_tensors):
        """Write checkpoint ``path``, its marker last."""
        rank = torch.distributed.get_rank()
        if rank == 0 and os.path.isdir(path):
            shutil.rmtree(path)  # an incomplete leftover of a killed save
        torch.distributed.barrier()
        from deepspeed.checkpoint import UNIVERSAL_CHECKPOINT_INFO
        for name, engine in engines.items():
            # the (empty) info marks the checkpoint convertible by ds_to_universal
            engine.save_checkpoint(path, tag=name, save_latest=False,
                                   client_state={UNIVERSAL_CHECKPOINT_INFO: {}})
        tensors, meta = rng_state()
        save_file(tensors, os.path.join(path, f'rng_rank{rank}.safetensors'))
        with open(os.path.join(path, f'rng_rank{rank}.json'), 'w') as f:
            json.dump(meta, f)
        if rank == 0:
            for name, t in (extra_tensors or {}).items():
                save_file({k: v.contiguous() for k, v in t.items()},
                          os.path.join(path, f'{name}.safetensors'))
            with open(os.path.join(path, 'runner_state.json'), 'w') as f:
                json.dump(runner_state, f, indent=2)
        torch.distributed.barrier()
        if rank == 0:
            _atomic_write_json(os.path.join(path, MARKER), {
                'global_step': step, 'world_size': torch.distributed.get_world_size(),
                'files': manifest(path)})
        torch.distributed.barrier()

    def load(self, path, engines, universal=()):
        """Restore the engines (those named in ``universal`` from ``path/universal``, see
        `convert_to_universal`); returns (runner_state, extra tensors by name)."""
        rank = torch.distributed.get_rank()
        for name, engine in engines.items():
            where = os.path.join(path, UNIVERSAL) if name in universal else path
            groups = [{k: v for k, v in g.items() if k not in ('params', 'lr', 'initial_lr')}
                      for g in engine.optimizer.param_groups]
            try:
                with weights_only_loads():
                    loaded, _ = engine.load_checkpoint(where, tag=name,
                                                       load_optimizer_states=True,
                                                       load_lr_scheduler_states=True)
            except pickle.UnpicklingError as err:
                raise refused_pickle(os.path.join(where, name), err) from err
            except IndexError as err:
                if name not in universal:
                    raise
                # DeepSpeed 0.19.8 (base_optimizer.load_hp_checkpoint_state_from_checkpoint_dir)
                raise RuntimeError(
                    f'DeepSpeed could not load the universal checkpoint of {name!r} on rank '
                    f'{rank}: its ZeRO partition holds no element of some parameter group (a '
                    'group with fewer elements than ranks, e.g. a lone bias); resume on the '
                    'world size that saved it') from err
            if loaded is None:
                raise RuntimeError(f'DeepSpeed could not load {name!r} from {where}')
            if name in universal:
                restore_unpartitioned_state(engine, os.path.join(path, name))
                fix_universal_optimizer_state(engine, groups)
        with open(os.path.join(path, 'runner_state.json')) as f:
            state = json.load(f)
        rng_file = os.path.join(path, f'rng_rank{rank}.safetensors')
        if os.path.isfile(rng_file):  # absent when resuming on more ranks than were saved
            with open(os.path.join(path, f'rng_rank{rank}.json')) as f:
                set_rng_state(load_file(rng_file), json.load(f))
        extras = {}
        for fname in os.listdir(path):
            if fname.endswith('.safetensors') and not fname.startswith('rng_rank') and \
                    os.path.isfile(os.path.join(path, fname)):
                extras[fname[:-len('.safetensors')]] = load_file(os.path.join(path, fname))
        return state, extras

    def _prune(self):
        done = complete_checkpoints(self.root)
        keep = {p for _, p in done[-self.max_keep:]} if self.max_keep > 0 else {p for _, p in done}
        newest = done[-1][0] if done else -1
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            if not os.path.isdir(path) or path in keep:
                continue
            complete = os.path.isfile(os.path.join(path, MARKER))
            # incomplete dirs older than the newest complete one are dead saves
            if complete or int(name.split('_')[-1]) < newest:
                shutil.rmtree(path, ignore_errors=True)
