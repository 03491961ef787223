"""Registered metrics and evaluation tasks."""
from . import retrieval  # noqa: F401
