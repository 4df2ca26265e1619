"""What the benchmarks share about their results: how two engines' values are compared, and where the JSON goes."""
from __future__ import annotations

import json
import math
from pathlib import Path


def rel_diff(a: float, b: float) -> float:
    """Relative difference of two values: 0 when both are NaN or they differ by at most 1e-9, inf when only
    one is NaN, else |a - b| / max(|a|, |b|)."""
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return 0.0 if math.isnan(a) and math.isnan(b) else math.inf
    d = abs(a - b)
    return 0.0 if d <= 1e-9 else d / max(abs(a), abs(b))


def write_results(path: Path, payload: dict) -> None:
    """Write a benchmark's results as JSON through a temporary file renamed onto ``path``, and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)
    print(f"\nJSON: {path}")


def maps_rel_diff(ours, ref) -> tuple[int, float]:
    """(values compared, largest :func:`rel_diff`) of two SimpleITK feature maps, voxel by voxel; raises
    ``AssertionError`` when their grids differ."""
    import numpy as np
    import SimpleITK as sitk

    if ours.GetSize() != ref.GetSize() or not np.allclose(ours.GetOrigin(), ref.GetOrigin()) \
            or not np.allclose(ours.GetSpacing(), ref.GetSpacing()) \
            or not np.allclose(ours.GetDirection(), ref.GetDirection()):
        raise AssertionError(f"map grids differ: {ours.GetSize()} / {ref.GetSize()}, origin {ours.GetOrigin()} / "
                             f"{ref.GetOrigin()}")
    a = sitk.GetArrayFromImage(ours).ravel()
    b = sitk.GetArrayFromImage(ref).ravel()
    na, nb = np.isnan(a), np.isnan(b)
    if np.any(na != nb):
        return a.size, math.inf
    d = np.abs(a - b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(na | (d <= 1e-9), 0.0, d / np.maximum(np.abs(a), np.abs(b)))
    return a.size, float(r.max()) if r.size else 0.0
