"""Registered model components; importing this package registers them all."""
from . import encoders  # noqa: F401
