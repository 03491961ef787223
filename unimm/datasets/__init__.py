"""Registered datasets and transforms; importing this package registers them all."""
from . import transforms, image_datasets, collate  # noqa: F401
from . import shapes_datasets  # noqa: F401
from . import llava  # noqa: F401
from . import t2i  # noqa: F401
from . import mixed  # noqa: F401
