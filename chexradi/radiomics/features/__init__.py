"""Feature classes: one module per PyRadiomics class, discovered by name."""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["get_feature_module"]

_MODULES = {
    "firstorder": "firstorder",
    "shape": "shape",
    "shape2D": "shape2D",
    "glcm": "glcm",
    "glrlm": "glrlm",
    "glszm": "glszm",
    "gldm": "gldm",
    "ngtdm": "ngtdm",
}


def get_feature_module(class_name: str) -> ModuleType:
    """The module implementing ``class_name`` (``CLASS_NAME``, ``FEATURES``, ``compute``)."""
    try:
        mod = _MODULES[class_name]
    except KeyError:
        raise ValueError(f"unknown feature class {class_name!r}; valid: {', '.join(_MODULES)}") from None
    return importlib.import_module(f"{__name__}.{mod}")
