"""Inference: `CFGSampler`, the fast classifier-free-guidance sampler of image tokens,
`reference_generate`, the plain loop it agrees with token for token (sampler.py), and
`generate_images`, captions to images in one call (generate.py)."""
from .generate import generate_images  # noqa: F401
from .sampler import CFGSampler, reference_generate  # noqa: F401
