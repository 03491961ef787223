from . import semhitok  # noqa: F401
