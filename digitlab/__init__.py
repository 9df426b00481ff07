"""digitlab: handwritten digit recognition with neural networks you can read, train, inspect and deploy."""

__version__ = "0.1.0"

from .errors import DataError, DigitlabError, ModelError  # noqa: E402

__all__ = ["DataError", "DigitlabError", "ModelError", "__version__"]
