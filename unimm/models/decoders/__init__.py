"""Decoders: quantised codes ``[B, N, C']`` -> images (pixel) or teacher features (semantic)."""
from . import enhance, semantic, vit  # noqa: F401
