"""Image tokenizers: the `ImageTokenizer` protocol (base.py) and its assemblies, SemHiTok
and the baselines it is compared with."""
from . import dual_codebook, dual_encoder, joint, pixel_vq, semhitok  # noqa: F401
from .base import IdFactorization, ImageTokenizer  # noqa: F401
