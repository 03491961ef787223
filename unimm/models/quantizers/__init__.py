"""Quantizers: every one returns a QuantizerOutput and inverts ids with ``lookup``."""
from . import sghc, spc  # noqa: F401
from .output import QuantizerOutput  # noqa: F401
