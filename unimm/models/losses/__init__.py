"""Reconstruction losses of pixel tokenizers (L1/L2, LPIPS) and the semantic cosine loss."""
from .cosine import cosine_loss  # noqa: F401
from .lpips import LPIPSLoss, build_lpips_vgg, default_lpips_weights  # noqa: F401
from .pixel import PixelReconstructionLoss  # noqa: F401
