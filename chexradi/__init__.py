"""chexradi: the ChexRadiNet loop on chest X-rays, and a radiomics engine with PyRadiomics' numbers.

Public API (everything else is internal):

- :func:`extract` — radiomics features of one (image, mask) case;
- :class:`Extractor` — the same, reusable, with validated settings;
- :func:`extract_feature_maps` — voxel-based feature maps of one case (PyRadiomics' ``voxelBased``);
- :func:`load_settings` — settings from a dict, a YAML/JSON parameter file and keywords;
- :func:`extract_batch` — many cases, in processes, resumable;
- :func:`versions` — the package versions recorded in every output;
- :func:`iterate` — the ChexRadiNet loop (radiomics-guided training rounds), returning a :class:`History`;
- :func:`plot_history` — a run's curves;
- :func:`compare` — arms of the loop against a control arm on the same test images (DeLong, paired
  bootstrap, spread over seeds), returning a :class:`Comparison`.

Importing :mod:`chexradi` does not import torch.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["extract", "Extractor", "extract_feature_maps", "load_settings", "extract_batch", "versions", "iterate",
           "History",
           "plot_history", "compare", "Comparison", "__version__"]


def __dir__() -> list[str]:  # the lazy names too (tab completion, documentation tools)
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:  # lazy: keep `import chexradi` light
    if name in ("extract", "Extractor", "extract_feature_maps", "versions"):
        from .radiomics import extractor

        return getattr(extractor, name)
    if name == "load_settings":
        from .radiomics.settings import load_settings

        return load_settings
    if name == "extract_batch":
        from .radiomics.batch import extract_batch

        return extract_batch
    if name in ("iterate", "History", "plot_history"):
        from . import loop

        return getattr(loop, name)
    if name in ("compare", "Comparison"):
        from .loop import compare as _compare

        return getattr(_compare, name)
    raise AttributeError(f"module 'chexradi' has no attribute {name!r}")
