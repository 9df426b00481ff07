"""The errors digitlab raises for things a user can fix.

Every front end catches :class:`DigitlabError` and shows its message as one line; anything else is a
bug and keeps its traceback.
"""


class DigitlabError(Exception):
    """Base class: a problem with the user's input, files or settings, explained in the message."""


class DataError(DigitlabError, ValueError):
    """A data file is missing, malformed or inconsistent. The message names the file and the fault."""


class ModelError(DigitlabError, ValueError):
    """A model, a model file or a recipe cannot be used as asked."""


class ImageError(DigitlabError, ValueError):
    """An input image cannot be used: not an image, truncated, empty, too large, or blank."""


def lookup(registry, name, what: str, error: type[DigitlabError] = None):
    """``registry[name]`` for a name a user typed (a recipe, a loss, a layer type...), or ``error``
    (default `ModelError`) saying "unknown WHAT 'name'; known: ..." with the names it knows."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        known = ", ".join(map(str, registry))
        raise (error or ModelError)(f"unknown {what} {name!r}; known: {known}") from None
