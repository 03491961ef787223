"""Quantizers: every one returns a QuantizerOutput and inverts ids with ``lookup``."""
from . import dual_codebook, sghc, spc, vq  # noqa: F401
from .output import QuantizerOutput  # noqa: F401
