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


class PretrainedMixin:
    """Mixed into registered nn.Modules that are saved and loaded as folders."""

    CONFIG_NAME = 'config.json'
    WEIGHTS_NAME = 'model.safetensors'
    build_config = None  # set by the registry build function

    def export_config(self):
        """The config written to config.json; override to drop machine-local paths."""
        if self.build_config is None:
            raise RuntimeError(f'{type(self).__name__} was not built from a config '
                               '(use unimm.registry.MODELS.build), so it cannot be saved')
        return plain(self.build_config)

    def save_pretrained(self, folder, state_dict=None):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, self.CONFIG_NAME), 'w') as f:
            json.dump(self.export_config(), f, indent=2)
        state_dict = self.state_dict() if state_dict is None else state_dict
        # safetensors refuses tensors that share storage (tied weights): those are copied, the
        # rest written as they are (an export's state dict is not held twice in memory)
        tensors, storages = {}, set()
        for k, v in state_dict.items():
            t = v.detach().to('cpu').contiguous()
            if t.untyped_storage().data_ptr() in storages:
                t = t.clone()
            storages.add(t.untyped_storage().data_ptr())
            tensors[k] = t
        save_file(tensors, os.path.join(folder, self.WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, folder, map_location='cpu', **overrides):
        from unimm.registry import MODELS
        cfg_file = os.path.join(folder, cls.CONFIG_NAME)
        weights = os.path.join(folder, cls.WEIGHTS_NAME)
        for f in (cfg_file, weights):
            if not os.path.isfile(f):
                raise FileNotFoundError(
                    f'{f} not found: a unimm pretrained folder holds {cls.CONFIG_NAME} and '
                    f'{cls.WEIGHTS_NAME}, as written by save_pretrained / tools/train.py')
        with open(cfg_file) as f:
            cfg = json.load(f)
        cfg.update(overrides)
        model = MODELS.build(cfg, path=f'{folder}/{cls.CONFIG_NAME}')
        model.load_state_dict(load_file(weights, device=str(map_location)))
        return model



def load_unimm_folder(folder, what, hint='', **overrides):
    """A unimm module saved by ``save_pretrained``, whatever its registered type (read from
    its config.json). ``what`` names the config key in errors; ``hint`` says what to do."""
    cfg_file = os.path.join(str(folder), PretrainedMixin.CONFIG_NAME)
    if not os.path.isfile(cfg_file):
        raise FileNotFoundError(f'{what}: {cfg_file} not found; give the export folder of a '
                                f'trained tokenizer (<work_dir>/export of its training run). {hint}')
    with open(cfg_file) as f:
        type_ = json.load(f)['type']
    from unimm.registry import MODELS
    return MODELS.get(type_).from_pretrained(folder, **overrides)
