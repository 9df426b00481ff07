"""digitlab: handwritten digit recognition with neural networks you can read, train, inspect and deploy."""

__version__ = "0.1.0"

from .errors import DataError, DigitlabError, ModelError  # noqa: E402


def load_model(path):
    """Load a model file (.npz): see `digitlab.modelfile.load_model`."""
    from .modelfile import load_model

    return load_model(path)


def save_model(model, path, **metadata):
    """Write a model file (.npz), atomically: see `digitlab.modelfile.save_model`."""
    from .modelfile import save_model

    return save_model(model, path, **metadata)


__all__ = ["DataError", "DigitlabError", "ModelError", "__version__", "load_model", "save_model"]
