"""Registered metrics and evaluation tasks."""
from . import retrieval  # noqa: F401
from . import recon_metrics  # noqa: F401
from . import recon  # noqa: F401
