"""Inference: `CFGSampler`, the fast classifier-free-guidance sampler of image tokens, and
`reference_generate`, the plain loop it agrees with token for token (sampler.py)."""
from .sampler import CFGSampler, reference_generate  # noqa: F401
