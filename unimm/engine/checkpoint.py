"""Checkpoints that survive a kill mid-save: a checkpoint counts only once its
`complete.json` marker exists, and the marker is written last, atomically."""
import json
import os
import random
import shutil

import numpy as np
import torch
from safetensors.torch import load_file, save_file

MARKER = 'complete.json'


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


def resolve_resume(resume, root):
    """``auto`` -> newest complete checkpoint under root (None if there is none); a path
    -> that checkpoint, which must be complete."""
    if resume in (None, False, ''):
        return None
    if resume == 'auto':
        found = complete_checkpoints(root)
        return found[-1][1] if found else None
    path = os.path.abspath(resume)
    if not os.path.isfile(os.path.join(path, MARKER)):
        raise FileNotFoundError(f'{path} is not a complete unimm checkpoint (no {MARKER}); '
                                f'complete ones under {root}: {complete_checkpoints(root)}')
    return path


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


class CheckpointManager:
    """Saves/loads DeepSpeed engines plus the runner's own state under ``root/step_N``."""

    def __init__(self, root, max_keep=3):
        self.root = root
        self.max_keep = max_keep

    def save(self, step, engines, runner_state, extra_tensors=None):
        """Collective: every rank calls it. ``engines`` maps a name to an engine."""
        rank = torch.distributed.get_rank()
        tag = f'step_{step:08d}'
        path = os.path.join(self.root, tag)
        if rank == 0 and os.path.isdir(path):
            shutil.rmtree(path)  # an incomplete leftover of a killed save
        torch.distributed.barrier()
        for name, engine in engines.items():
            engine.save_checkpoint(path, tag=name, save_latest=False)
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
            _atomic_write_json(os.path.join(path, MARKER), {'global_step': step})
            self._prune()
        torch.distributed.barrier()
        return path

    def load(self, path, engines):
        """Restore the engines; returns (runner_state, extra tensors by name)."""
        rank = torch.distributed.get_rank()
        for name, engine in engines.items():
            loaded, _ = engine.load_checkpoint(path, tag=name, load_optimizer_states=True,
                                               load_lr_scheduler_states=True)
            if loaded is None:
                raise RuntimeError(f'DeepSpeed could not load {name!r} from {path}')
        with open(os.path.join(path, 'runner_state.json')) as f:
            state = json.load(f)
        rng_file = os.path.join(path, f'rng_rank{rank}.safetensors')
        if os.path.isfile(rng_file):  # absent when resuming on more ranks than were saved
            with open(os.path.join(path, f'rng_rank{rank}.json')) as f:
                set_rng_state(load_file(rng_file), json.load(f))
        extras = {}
        for fname in os.listdir(path):
            if fname.endswith('.safetensors') and not fname.startswith('rng_rank'):
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
