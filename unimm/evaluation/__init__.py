"""Registered metrics and evaluation tasks."""
from . import retrieval  # noqa: F401
from . import recon_metrics  # noqa: F401
from . import recon  # noqa: F401
from . import vqa, lmms, probe  # noqa: F401
from . import geneval, shapes_geneval, mjhq  # noqa: F401
from . import task_loss  # noqa: F401
