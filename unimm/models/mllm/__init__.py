"""Multimodal LLMs (understanding, generation, unified) and their heads and adapters."""
from . import visual_head, generation  # noqa: F401
from . import projector, features, understanding  # noqa: F401
from . import unified  # noqa: F401
