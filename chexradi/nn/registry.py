"""Models by name, as timm does: :func:`register_model`, :func:`create_model`, :func:`list_models`.

Every chexradi model (the classifiers here; a text encoder, a report generator)
is built by a *factory* registered under a name and a *family*. The factory's
model carries ``config``, a JSON-able dict with at least ``"name"`` (the
registered name) from which the model is rebuilt: a checkpoint saves ``config``
and the weights, and :func:`chexradi.nn.load_model` rebuilds any registered model
from it.

Registering your own::

    from chexradi.nn import register_model

    @register_model(family="text_encoder")
    def tiny_text(vocab_size: int = 100, dim: int = 32) -> nn.Module:
        model = TinyText(vocab_size, dim)
        model.config = {"name": "tiny_text", "vocab_size": vocab_size, "dim": dim}
        return model

``create_model("tiny_text", dim=64)`` builds it; a checkpoint of it loads by name
once the module that registers it is imported (chexradi's own models register
when :mod:`chexradi.nn` is imported; checkpoints record the registering module and
:func:`model_from_config` imports it when it is a chexradi module).
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

from torch import nn

__all__ = ["ModelSpec", "register_model", "create_model", "list_models", "model_spec", "model_from_config",
           "model_name"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, family, factory and how to rebuild it from its ``config``."""

    name: str
    family: str
    factory: Callable[..., nn.Module]
    from_config: Callable[[dict[str, Any]], nn.Module]
    module: str
    description: str = ""


_REGISTRY: dict[str, ModelSpec] = {}


def _default_from_config(factory: Callable[..., nn.Module]) -> Callable[[dict[str, Any]], nn.Module]:
    """Rebuild by calling the factory with the config entries that are its parameters."""
    params = inspect.signature(factory).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    def rebuild(config: dict[str, Any]) -> nn.Module:
        return factory(**{k: v for k, v in config.items() if k != "name" and (takes_all or k in params)})

    return rebuild


def register_model(name: Optional[str] = None, *, family: str, from_config: Optional[Callable[[dict[str, Any]],
                   nn.Module]] = None, description: str = "",
                   replace: bool = False) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a model factory under ``name`` (default: the function's name).

    Parameters
    ----------
    family:
        What kind of model (``"classifier"``, ``"text_encoder"``, ``"report_generator"``, ...);
        :func:`list_models` filters by it.
    from_config:
        ``config -> model`` for checkpoints; default: the factory called with the config
        entries that are among its parameters.
    replace:
        Allow replacing a name registered by another factory (otherwise an error: two
        models must not share a name).

    Raises
    ------
    ValueError
        An empty name or family, or a name already taken by another factory.
    """
    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or factory.__name__
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"register_model needs a non-empty model name, got {key!r}")
        if not isinstance(family, str) or not family.strip():
            raise ValueError(f"register_model needs a non-empty family (e.g. 'classifier'), got {family!r}")
        old = _REGISTRY.get(key)
        if old is not None and not replace and (old.module, getattr(old.factory, "__qualname__", None)) != (
                factory.__module__, getattr(factory, "__qualname__", None)):
            raise ValueError(f"model name {key!r} is already registered (a {old.family} from {old.module}); "
                             f"choose another name, or pass replace=True")
        _REGISTRY[key] = ModelSpec(name=key, family=family, factory=factory,
                                   from_config=from_config or _default_from_config(factory),
                                   module=factory.__module__, description=description)
        return factory

    return decorate


def list_models(family: Optional[str] = None) -> list[str]:
    """Registered model names, sorted; only those of ``family`` when given."""
    return sorted(n for n, s in _REGISTRY.items() if family is None or s.family == family)


def model_spec(name: str, *, family: Optional[str] = None) -> ModelSpec:
    """The registration of ``name``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones of the family), or a model
        of another family than ``family``.
    """
    spec = _REGISTRY.get(name) if isinstance(name, str) else None
    if spec is None:
        known = list_models(family)
        raise ValueError(f"unknown model {name!r}; known {family + ' ' if family else ''}models: "
                         f"{', '.join(known) or 'none'}")
    if family is not None and spec.family != family:
        raise ValueError(f"model {name!r} is a {spec.family}, not a {family}; known {family} models: "
                         f"{', '.join(list_models(family)) or 'none'}")
    return spec


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; ``kwargs`` go to its factory.

    For the classifiers (``resnet50_ta``, ``densenet121``, ...) see
    :func:`chexradi.nn.models.create_classifier` for the arguments
    (``num_classes``, ``in_chans``, ``attention``, ``output_stride``, ...).

    Raises
    ------
    ValueError
        Unknown name, bad arguments (from the factory), or a factory whose model
        has no ``config`` naming it (it could not be saved and loaded back).
    """
    spec = model_spec(name)
    try:
        model = spec.factory(**kwargs)
    except TypeError as exc:  # an argument the factory does not take
        raise ValueError(f"create_model({name!r}, ...): {exc}; see the arguments of its factory "
                         f"{spec.module}.{getattr(spec.factory, '__qualname__', spec.factory)}") from exc
    return _checked(model, spec, "create_model")


def model_from_config(config: Mapping[str, Any], *, module: Optional[str] = None,
                      source: str = "the config") -> nn.Module:
    """Rebuild a registered model from its ``config`` (as a checkpoint stores it), with fresh weights.

    ``module``: the module that registered the model (checkpoints record it); when
    the name is not registered yet and ``module`` is a chexradi module, it is
    imported first.

    Raises
    ------
    ValueError
        A config without a name, or a name that is not registered (the message
        says which module to import).
    """
    cfg = dict(config)
    name = cfg.get("name")
    if not isinstance(name, str):
        raise ValueError(f"{source} has no model name (config['name']); it was not written by chexradi")
    if name not in _REGISTRY and isinstance(module, str) and module.split(".")[0] == "chexradi":
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    if name not in _REGISTRY:
        hint = (f"import {module} (it registers the model) before loading" if module else
                "import the module that registers it (chexradi.nn.register_model) before loading")
        raise ValueError(f"{source} is for model {name!r}, which is not registered in this chexradi "
                         f"(known: {', '.join(list_models())}); {hint}")
    spec = _REGISTRY[name]
    return _checked(spec.from_config(cfg), spec, "its from_config")


def model_name(model: Any) -> Optional[str]:
    """The name in ``model.config`` (what a checkpoint rebuilds the model from), or None when it has none."""
    config = getattr(model, "config", None)
    name = config.get("name") if isinstance(config, dict) else None
    return name if isinstance(name, str) else None


def _checked(model: Any, spec: ModelSpec, what: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ValueError(f"the factory of model {spec.name!r} ({spec.module}) returned {type(model).__name__} "
                         f"via {what}, not a torch.nn.Module")
    if model_name(model) not in _REGISTRY:
        raise ValueError(f"the model built by {spec.name!r} ({spec.module}) has no config['name'] naming a "
                         f"registered model; set model.config = {{'name': ..., <what rebuilds it>}} so that "
                         f"checkpoints load it back")
    return model
