"""digitlab: handwritten digit recognition with neural networks you can read, train, inspect and deploy."""

__version__ = "0.1.0"

from .errors import DataError, DigitlabError, ModelError  # noqa: E402



def load_model(path):
    """Load a model file (.npz) written by ``model.save``: see `digitlab.io.load_model`."""
    from .io import load_model as _load

    return _load(path)


__all__ = ["DataError", "DigitlabError", "ModelError", "__version__", "load_model"]
