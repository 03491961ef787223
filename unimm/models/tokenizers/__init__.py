"""Tokenizer assemblies: SemHiTok and the baselines it is compared with."""
from . import dual_codebook, dual_encoder, joint, pixel_vq, semhitok  # noqa: F401
