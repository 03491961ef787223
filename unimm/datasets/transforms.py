"""Image transforms: PIL image in, float tensor [3, H, W] in [-1, 1] out.

A transform is called as ``transform(img, seed=None)``; random choices are drawn from
``random.Random(seed)`` so a dataset can make them reproducible per (epoch, index).
"""
import random

import numpy as np
import torch
from PIL import Image

from unimm.registry import TRANSFORMS


def to_rgb(img):
    """Convert any PIL mode to RGB; transparent pixels are composited on white, not black."""
    if img.mode == 'RGB':
        return img
    if img.has_transparency_data:
        rgba = img.convert('RGBA')
        white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert('RGB')
    return img.convert('RGB')


def pil_to_tensor(img):
    """RGB PIL image -> float tensor [3, H, W] with 0 -> -1 and 255 -> 1."""
    array = np.array(img, dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


@TRANSFORMS.register_module()
class ImageTransform:
    """Resize, crop and optionally flip a PIL image into a [-1, 1] tensor.

    Resize policy (``resize``):
      - 'shorter': scale so the shorter side is exactly ``size``, keeping the aspect
        ratio (bicubic; PIL widens the kernel when downscaling, so it is antialiased);
      - 'stretch': scale straight to ``size`` x ``size``, ignoring the aspect ratio.
    Crop (``crop``, after resizing): 'center' or 'random' cut a ``size`` x ``size``
    square; 'none' keeps the whole resized image (for inputs known to be square:
    non-square ones give [3, size, L] tensors that only batch with the same aspect).
    ``random_flip`` flips left-right with probability 0.5.
    """

    RESIZE = ('shorter', 'stretch')
    CROP = ('center', 'random', 'none')

    def __init__(self, size=256, resize='shorter', crop='center', random_flip=False):
        if resize not in self.RESIZE:
            raise ValueError(f'resize must be one of {self.RESIZE}, got {resize!r}')
        if crop not in self.CROP:
            raise ValueError(f'crop must be one of {self.CROP}, got {crop!r}')
        self.size = int(size)
        self.resize = resize
        self.crop = crop
        self.random_flip = random_flip

    def __call__(self, img, seed=None):
        rng = random.Random(seed)
        img = self._resized(to_rgb(img))
        width, height = img.size
        if self.crop != 'none':
            if self.crop == 'center':
                left, top = (width - self.size) // 2, (height - self.size) // 2
            else:
                left, top = rng.randint(0, width - self.size), rng.randint(0, height - self.size)
            img = img.crop((left, top, left + self.size, top + self.size))
        if self.random_flip and rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return pil_to_tensor(img)

    def _resized(self, img):
        width, height = img.size
        if self.resize == 'stretch':
            target = (self.size, self.size)
        elif width <= height:
            target = (self.size, max(self.size, round(height * self.size / width)))
        else:
            target = (max(self.size, round(width * self.size / height)), self.size)
        return img if img.size == target else img.resize(target, Image.Resampling.BICUBIC)

    def __repr__(self):
        return (f'{type(self).__name__}(size={self.size}, resize={self.resize!r}, '
                f'crop={self.crop!r}, random_flip={self.random_flip})')


def build_transform(cfg):
    """A transform from a config dict (built in TRANSFORMS), a ready callable, or None
    (the default ``ImageTransform()``)."""
    if cfg is None:
        return ImageTransform()
    if callable(cfg):
        return cfg
    return TRANSFORMS.build(cfg)
