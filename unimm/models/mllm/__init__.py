"""Multimodal LLMs (understanding, generation) and their heads and adapters."""
from . import visual_head, generation  # noqa: F401
from . import projector, features, understanding  # noqa: F401
