from . import siglip_teacher  # noqa: F401
from . import semantic, vit  # noqa: F401
