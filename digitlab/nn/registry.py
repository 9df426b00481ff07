"""From the names users type ("adam", "onecycle", "cross_entropy") to the engine's objects, and
back: the CLI, the recipes and the model file all go through these two functions."""

from __future__ import annotations

from ..errors import ModelError, lookup


def from_spec(registry: dict[str, type], spec, what: str):
    """An object from a name (``"adam"``), a ``{"name": ..., **config}`` dict, or an object
    already made, which is returned as it is."""
    if not isinstance(spec, (str, dict)):
        return spec
    config = dict(spec) if isinstance(spec, dict) else {"name": spec}
    return lookup(registry, config.pop("name", None), what)(**config)


def spec_of(registry: dict[str, type], obj, what: str) -> dict:
    """``{"name": ..., **obj.get_config()}``: the dict `from_spec` rebuilds ``obj`` from."""
    for name, cls in registry.items():
        if type(obj) is cls:
            return {"name": name, **obj.get_config()}
    raise ModelError(f"{type(obj).__name__} is not a registered {what} ({', '.join(registry)}): it cannot be saved")
