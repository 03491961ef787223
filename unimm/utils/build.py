"""Config-to-object building with errors that name the key path, the component and
the closest valid names (mmengine's own errors name neither)."""
import contextvars
import difflib
import inspect

_PATH = contextvars.ContextVar('unimm_build_stack', default=())


class ConfigError(ValueError):
    """A config names something that does not exist or is missing something required."""


def closest(name, candidates, n=3):
    hits = difflib.get_close_matches(str(name), list(candidates), n=n, cutoff=0.5)
    return ', '.join(repr(h) for h in hits) if hits else 'none close'


def registered_names(registry):
    registry.import_from_location()
    names, reg = set(), registry
    while reg is not None:
        names.update(reg.module_dict)
        reg = reg.parent
    return sorted(names)


def _locate_in_parent(cfg):
    """Key of ``cfg`` inside the args of the component currently being built."""
    stack = _PATH.get()
    if not stack:
        return None
    parent_path, parent_args = stack[-1]
    for key, value in parent_args.items():
        if value is cfg or value == cfg:
            return f'{parent_path}.{key}'
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if item is cfg or item == cfg:
                    return f'{parent_path}.{key}[{i}]'
    return f'{parent_path}.<nested>'


def check_arguments(obj, args, where):
    """Raise ConfigError for arguments ``obj`` does not accept or requires but lacks."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = list(inspect.signature(target).parameters.values())
    if inspect.isclass(obj):
        params = params[1:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in args:
        if key not in accepted:
            raise ConfigError(f'{where}: unexpected argument {key!r} (closest: '
                              f'{closest(key, accepted)}; accepted: {", ".join(accepted)})')
    for p in params:
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) \
                and p.name not in args:
            raise ConfigError(f'{where}: missing required argument {p.name!r}')


def resolve_type(cfg, registry, path):
    type_ = cfg.get('type') if isinstance(cfg, dict) else None
    if type_ is None:
        raise ConfigError(f'{path}: a component config needs a "type" key, got {cfg!r}')
    if not isinstance(type_, str):
        return type_
    obj = registry.get(type_)
    if obj is None:
        raise ConfigError(f'{path}.type: unknown {registry.name} type {type_!r} '
                          f'(closest registered: {closest(type_, registered_names(registry))})')
    return obj


def build_checked(cfg, registry, default_args=None, path=None):
    """mmengine build function: resolve ``type``, check the arguments, construct."""
    if cfg is None:
        return None
    path = path or _locate_in_parent(cfg) or registry.name
    obj = resolve_type(cfg, registry, path)
    args = {k: v for k, v in dict(cfg).items() if k != 'type'}
    for k, v in (default_args or {}).items():
        args.setdefault(k, v)
    where = f'{path} ({getattr(obj, "__name__", obj)})'
    check_arguments(obj, args, where)
    token = _PATH.set(_PATH.get() + ((path, args),))
    try:
        instance = obj(**args)
    except ConfigError:
        raise
    except Exception as e:
        e.add_note(f'while building {where}')
        raise
    finally:
        _PATH.reset(token)
    if hasattr(instance, 'build_config'):
        # remembered so that save_pretrained can rebuild the component later
        instance.build_config = dict(cfg)
    return instance
