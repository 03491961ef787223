"""The ``compile`` config key: torch.compile a model's networks in place, leaving eager
the data-dependent quantizers (``eager_only``: EMA updates, restarts, statistics) and the
forwards that branch on Python values such as the training step or build masks from the
batch (``compile_children``: the PatchGAN, the HF LLM, whose decoder layers are compiled)."""
from torch import nn

from unimm.utils.build import ConfigError

# keyword arguments of torch.compile a config may set
COMPILE_OPTIONS = ('backend', 'mode', 'dynamic', 'fullgraph', 'options')


def compile_options(value, zero_stage):
    """The torch.compile keyword arguments of the config's ``compile`` (None when off)."""
    if value in (None, False):
        return None
    if value is not True and not isinstance(value, dict):
        raise ConfigError(f'compile: {value!r} is not True, None or a dict of torch.compile '
                          'arguments')
    options = {} if value is True else dict(value)
    unknown = sorted(set(options) - set(COMPILE_OPTIONS))
    if unknown:
        raise ConfigError(f'compile: unknown keys {unknown}; torch.compile takes '
                          f'{list(COMPILE_OPTIONS)} (or compile=True for its defaults)')
    if zero_stage == 3:
        raise ConfigError('compile: not supported with ZeRO-3 here (its parameter gathers run '
                          'in module hooks; untested under torch.compile); use ZeRO <= 2 or '
                          'compile=None')
    return options


def with_backend(value, backend):
    """The config's ``compile`` value with torch.compile's ``backend`` replaced (off stays
    off): CPU checks capture with ``'eager'`` instead of building inductor kernels."""
    if value in (None, False):
        return value
    return dict({} if value is True else value, backend=backend)


def compile_networks(module, options, prefix=''):
    """``nn.Module.compile`` (names, state dicts and checkpoints unchanged) on ``module``
    unless it is ``eager_only`` (all of it stays eager); when it or a module below it is
    ``eager_only`` or sets ``compile_children`` (its own forward stays eager), on each of
    its children instead, recursively (the items of an ``nn.ModuleList`` / ``ModuleDict``,
    which is never called itself, likewise). A loss holding a network outside its parameters,
    like `LPIPSLoss`, is compiled too. Returns the dotted names compiled (``prefix`` +
    name)."""
    if getattr(module, 'eager_only', False):
        return []
    container = isinstance(module, (nn.ModuleList, nn.ModuleDict))
    if not container and not any(getattr(m, 'eager_only', False) or
                                 getattr(m, 'compile_children', False) for m in module.modules()):
        module.compile(**options)
        return [prefix.rstrip('.')]
    names = []
    for name, child in module.named_children():
        names += compile_networks(child, options, f'{prefix}{name}.')
    return names
