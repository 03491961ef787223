"""save_pretrained / from_pretrained for unimm's own modules: config.json holds the
registry config the module was built from, model.safetensors its weights."""
import json
import os

from mmengine.config import ConfigDict
from safetensors.torch import load_file, save_file


def plain(obj):
    """Config values as JSON-able builtins (ConfigDict -> dict, tuple -> list)."""
    if isinstance(obj, (dict, ConfigDict)):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def sub_state(state, prefix):
    """The entries of ``state`` under ``prefix``, with the prefix taken off their keys."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class PretrainedMixin:
    """Mixed into registered nn.Modules that are saved and loaded as folders: every unimm
    model (tokenizers, feature adapters, the discriminator, the MLLMs).

    A folder holds ``config.json`` (the registry config, `export_config`) and the weights
    in ``WEIGHTS_NAME`` (safetensors, keys without ``WEIGHTS_PREFIX``). A module with parts
    that keep folders of their own (an HF LLM, a frozen tokenizer export) names their
    state-dict prefixes in ``FOLDER_PREFIXES``, writes them in `save_parts` and turns the
    config's folder names back into paths in `resolve_config`; its other weights go to
    ``WEIGHTS_NAME`` as usual."""

    CONFIG_NAME = 'config.json'
    WEIGHTS_NAME = 'model.safetensors'
    WEIGHTS_PREFIX = ''
    FOLDER_PREFIXES = ()  # state-dict keys written by save_parts
    build_config = None  # set by the registry build function

    def export_config(self):
        """The config written to config.json; override to drop machine-local paths."""
        if self.build_config is None:
            raise RuntimeError(f'{type(self).__name__} was not built from a config '
                               '(use unimm.registry.MODELS.build), so it cannot be saved')
        return plain(self.build_config)

    def save_parts(self, folder, state):
        """Write the parts under ``FOLDER_PREFIXES`` of ``state`` to their sub-folders."""

    @classmethod
    def resolve_config(cls, cfg, folder):
        """Turn a saved config into the constructor's (sub-folder names into paths)."""

    def save_pretrained(self, folder, state_dict=None):
        state = self.state_dict() if state_dict is None else state_dict
        os.makedirs(folder, exist_ok=True)
        self.save_parts(folder, state)
        with open(os.path.join(folder, self.CONFIG_NAME), 'w') as f:
            json.dump(self.export_config(), f, indent=2)
        own = {k: v for k, v in state.items() if not k.startswith(self.FOLDER_PREFIXES)}
        stray = [k for k in own if not k.startswith(self.WEIGHTS_PREFIX)]
        if stray:
            raise RuntimeError(f'{type(self).__name__}: weights {stray[:5]} are neither under '
                               f'{self.WEIGHTS_PREFIX!r} nor in a sub-folder')
        # safetensors refuses tensors that share storage (tied weights): those are copied, the
        # rest written as they are (an export's state dict is not held twice in memory)
        tensors, storages = {}, set()
        for k, v in sub_state(own, self.WEIGHTS_PREFIX).items():
            t = v.detach().to('cpu').contiguous()
            if t.untyped_storage().data_ptr() in storages:
                t = t.clone()
            storages.add(t.untyped_storage().data_ptr())
            tensors[k] = t
        save_file(tensors, os.path.join(folder, self.WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, folder, map_location='cpu', **overrides):
        """Rebuild from ``save_pretrained``'s folder as the type its config.json names
        (``PretrainedMixin.from_pretrained`` loads any unimm folder); ``overrides``
        replace config keys, ``map_location`` is where the weights file is read to."""
        from unimm.registry import MODELS
        cfg_file = os.path.join(folder, cls.CONFIG_NAME)
        if not os.path.isfile(cfg_file):
            raise FileNotFoundError(f'{cfg_file} not found: a unimm model folder holds '
                                    f'{cls.CONFIG_NAME}, as save_pretrained writes it '
                                    '(tools/train.py: <work_dir>/export)')
        with open(cfg_file) as f:
            cfg = json.load(f)
        own_cls = MODELS.get(cfg['type'])
        if own_cls is not cls:
            return own_cls.from_pretrained(folder, map_location, **overrides)
        weights = os.path.join(folder, cls.WEIGHTS_NAME)
        if not os.path.isfile(weights):
            raise FileNotFoundError(f'{weights} not found: a {cls.__name__} folder holds '
                                    f'{cls.WEIGHTS_NAME} next to {cls.CONFIG_NAME}')
        cls.resolve_config(cfg, folder)
        cfg.update(overrides)
        model = MODELS.build(cfg, path=cfg_file)
        own = load_file(weights, device=str(map_location))
        missing, unexpected = model.load_state_dict(
            {cls.WEIGHTS_PREFIX + k: v for k, v in own.items()}, strict=False)
        missing = [k for k in missing if not k.startswith(cls.FOLDER_PREFIXES)]
        if missing or unexpected:
            raise RuntimeError(f'{folder}: weights do not match the model (missing {missing[:5]}, '
                               f'unexpected {unexpected[:5]})')
        return model


def load_unimm_folder(folder, what, hint='', **overrides):
    """A unimm module saved by ``save_pretrained``, whatever its registered type (read from
    its config.json). ``what`` names the config key in errors; ``hint`` says what to do."""
    cfg_file = os.path.join(str(folder), PretrainedMixin.CONFIG_NAME)
    if not os.path.isfile(cfg_file):
        raise FileNotFoundError(f'{what}: {cfg_file} not found; give the export folder of a '
                                f'trained tokenizer (<work_dir>/export of its training run). {hint}')
    return PretrainedMixin.from_pretrained(folder, **overrides)
