"""Reconstruction losses of pixel tokenizers (L1/L2, LPIPS)."""
from .lpips import LPIPSLoss, build_lpips_vgg, default_lpips_weights  # noqa: F401
from .pixel import PixelReconstructionLoss  # noqa: F401
