"""Registered model components; importing this package registers them all."""
from . import encoders  # noqa: F401
from . import decoders  # noqa: F401
from . import quantizers  # noqa: F401
from . import losses, discriminators  # noqa: F401
from . import tokenizers  # noqa: F401
from . import mllm  # noqa: F401
