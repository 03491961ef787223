from . import siglip_teacher  # noqa: F401
