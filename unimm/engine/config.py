"""Load a Python config with `_base_` inheritance and `--cfg-options`, then check
its top-level keys and every component `type` before anything is built."""
from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported for tools)

from unimm.registry import ALL_REGISTRIES
from unimm.utils.build import ConfigError, closest, registered_names

# top-level keys a unimm config may hold; private helpers start with "_"
KNOWN_KEYS = {
    'model', 'discriminator', 'train_dataloader', 'val_dataloader', 'test_dataloader',
    'optim_wrapper', 'disc_optim_wrapper', 'param_scheduler', 'train_cfg', 'test_cfg',
    'checkpoint', 'deepspeed', 'randomness', 'ema', 'work_dir', 'custom_imports',
    'log_cfg', 'load_from', 'compile',
}
# sub-trees whose dicts with a "type" are registry components
COMPONENT_ROOTS = ('model', 'discriminator', 'train_dataloader', 'val_dataloader',
                   'test_dataloader', 'test_cfg')


def load_config(path, cfg_options=None):
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        import importlib
        for name in cfg.custom_imports.get('imports', []):
            importlib.import_module(name)
    check_config(cfg)
    return cfg


def check_config(cfg):
    """Fail early, naming the key path, on unknown keys and unknown component types."""
    for key in cfg.keys():
        if key not in KNOWN_KEYS and not key.startswith('_'):
            raise ConfigError(f'unknown top-level config key {key!r} (closest: '
                              f'{closest(key, KNOWN_KEYS)}); helper variables must start '
                              'with "_"')
    if 'model' not in cfg:
        raise ConfigError('the config has no "model"')
    for root in COMPONENT_ROOTS:
        if root in cfg:
            _check_types(cfg[root], root)


def _check_types(node, path):
    if isinstance(node, dict):
        type_ = node.get('type')
        if isinstance(type_, str) and not any(r.get(type_) for r in ALL_REGISTRIES):
            names = sorted({n for r in ALL_REGISTRIES for n in registered_names(r)})
            raise ConfigError(f'{path}.type: unknown type {type_!r} '
                              f'(closest registered: {closest(type_, names)})')
        for k, v in node.items():
            _check_types(v, f'{path}.{k}')
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            _check_types(v, f'{path}[{i}]')
