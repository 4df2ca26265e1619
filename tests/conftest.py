"""Shared test helpers: where the real data lives, parity assertions, random cases."""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Mapping

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CHEXRADI_SHARED_DATA", REPO.parent / "shared" / "data"))

#: The smallest phantom a whole loop run trains on in the tests (seconds per round).
TINY_PHANTOM_SPEC = "phantom:n_train=20,n_val=10,n_test=10,size=64"

# Parity tolerance of the issue: relative 1e-6, absolute 1e-9 near zero.
RTOL = 1e-6
ATOL = 1e-9


def write_file(tmp_path: Path, text: str, name: str = "set.yaml") -> Path:
    """Write ``text`` to ``tmp_path / name`` and return the path (label sets, vocabularies, parameter files)."""
    p = tmp_path / name
    p.write_text(text)
    return p


def shared(*parts: str) -> Path:
    """Path under ../shared/data; skips the test with a reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real test data not available: {p} (set CHEXRADI_SHARED_DATA to the shared data folder)")
    return p


def close(a: float, b: float, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """True when a and b agree within the parity tolerance (NaN equals NaN)."""
    a = float(a)
    b = float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= max(atol, rtol * max(abs(a), abs(b)))


def assert_parity(ours: Mapping[str, float], ref: Mapping[str, float], context: str = "") -> None:
    """Every key of ``ref`` is in ``ours`` with a value within tolerance, and no extra keys."""
    missing = sorted(set(ref) - set(ours))
    extra = sorted(set(ours) - set(ref))
    assert not missing, f"{context}: features missing from chexradi: {missing}"
    assert not extra, f"{context}: features chexradi returns that PyRadiomics does not: {extra}"
    bad = [(k, ours[k], ref[k]) for k in ref if not close(ours[k], ref[k])]
    assert not bad, f"{context}: {len(bad)} feature(s) differ (name, chexradi, pyradiomics): {bad}"


def random_case(kind: str, seed: int, ndim: int = 2, size: int = 24):
    """A random (image, bool mask, spacing) test case of a given ``kind``.

    kinds: "blob" (random smooth-ish region), "full" (mask = whole image, touches
    every border), "line" (one-pixel-wide mask), "flat" (constant image in the
    ROI), "sparse" (random scattered voxels), "border" (blob touching the border),
    "small" (two voxels).
    """
    rng = np.random.default_rng(seed)
    shape = (size, size + 3) if ndim == 2 else (max(3, size // 3), size, size + 2)
    image = rng.normal(100.0, 40.0, shape).round(1)
    mask = np.zeros(shape, bool)
    if kind == "blob":
        c = [s // 2 for s in shape]
        grid = np.indices(shape)
        r2 = sum(((g - ci) / max(2, s / 3)) ** 2 for g, ci, s in zip(grid, c, shape))
        mask = r2 + rng.uniform(0, 0.6, shape) < 1.0
    elif kind == "full":
        mask[...] = True
    elif kind == "line":
        if ndim == 2:
            mask[shape[0] // 2, 2:-2] = True
        else:
            mask[shape[0] // 2, shape[1] // 2, 1:-1] = True
    elif kind == "flat":
        mask[tuple(slice(1, s - 1) for s in shape)] = True
        image[mask] = 77.0
    elif kind == "sparse":
        mask = rng.random(shape) < 0.3
    elif kind == "border":
        mask[tuple(slice(0, s // 2 + 1) for s in shape)] = True
    elif kind == "small":
        idx = tuple(s // 2 for s in shape)
        mask[idx] = True
        idx2 = list(idx)
        idx2[-1] += 1
        mask[tuple(idx2)] = True
    else:  # pragma: no cover
        raise ValueError(kind)
    if mask.sum() < 2:
        mask.flat[:2] = True
    spacing = tuple(float(x) for x in rng.uniform(0.5, 2.0, ndim).round(3))
    return image, mask, spacing


CASE_KINDS = ["blob", "full", "line", "flat", "sparse", "border", "small"]


# ----------------------------------------------------------------------------- per-class parity
# PyRadiomics' checkMask refuses 1-D ROIs (the "line" and "small" kinds) by default.
PARITY_BASE = {"minimumROIDimensions": 1}


def class_parity(class_name: str, image, mask, spacing=None, settings=None, names=None, context: str = ""):
    """One feature class, chexradi vs PyRadiomics on the same arrays; asserts parity, returns ours.

    ``names=None`` asks PyRadiomics for its default (non-deprecated) features and chexradi for the same.
    """
    from chexradi.radiomics.features import get_feature_module
    from chexradi.radiomics.preprocess import roi_from_arrays
    from chexradi.radiomics.reference import run_feature_class

    module = get_feature_module(class_name)
    settings = {**PARITY_BASE, **(settings or {})}
    ref = run_feature_class(class_name, image, mask, spacing=spacing, settings=settings, names=names)
    default = [n for n, deprecated in module.FEATURES.items() if not deprecated]
    ours = module.compute(roi_from_arrays(image, mask, spacing=spacing, settings=settings), names or default)
    assert_parity(ours, ref, context)
    return ours


def read_pyradiomics_case(name: str):
    """(image float64, label-1 mask, spacing in numpy order) of a PyRadiomics test case."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(shared("pyradiomics-cases", f"{name}_image.nrrd")))
    lab = sitk.ReadImage(str(shared("pyradiomics-cases", f"{name}_label.nrrd")))
    return (sitk.GetArrayFromImage(img).astype(np.float64), sitk.GetArrayFromImage(lab) == 1,
            tuple(reversed(img.GetSpacing())))


def read_cxr(name: str = "00000001_000.png") -> np.ndarray:
    """A real radiograph from ../shared/data/real-cxr as a 2-D float64 array."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(shared("real-cxr", name))))
    assert arr.ndim == 2
    return arr.astype(np.float64)


def ellipse_mask(shape, ry: float, rx: float, *, inclusive: bool = True) -> np.ndarray:
    """Centred ellipse with semi-axes ``ry * height`` and ``rx * width``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r2 = ((yy - shape[0] / 2) / (ry * shape[0])) ** 2 + ((xx - shape[1] / 2) / (rx * shape[1])) ** 2
    return r2 <= 1 if inclusive else r2 < 1


def read_cxr_ellipse(ry: float = 0.42, rx: float = 0.36, *, inclusive: bool = True):
    """(radiograph, central ellipse mask)."""
    image = read_cxr()
    return image, ellipse_mask(image.shape, ry, rx, inclusive=inclusive)


def cxr_masks(shape) -> dict[str, np.ndarray]:
    """Masks on a radiograph: a central ellipse, and two separate wavy blobs (left / right lung field)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    wav = 0.08 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
    left = ((yy - 0.5 * shape[0]) / 150) ** 2 + ((xx - 0.3 * shape[1]) / 70) ** 2 + wav <= 1
    right = ((yy - 0.45 * shape[0]) / 140) ** 2 + ((xx - 0.72 * shape[1]) / 65) ** 2 + wav <= 1
    assert not (left & right).any()
    return {"ellipse": ellipse_mask(shape, 0.39, 0.31), "two_blobs": left | right}


_FAILED_MODULES: set[str] = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember which modules had a failing test (their folders are kept for a look)."""
    outcome = yield
    if outcome.get_result().failed:
        _FAILED_MODULES.add(item.module.__name__)


@pytest.fixture(scope="module", autouse=True)
def _remove_module_folders(request, tmp_path_factory):
    """Remove what a module's fixtures made with ``tmp_path_factory`` once the module is done.

    pytest keeps module-scoped folders until the session ends; the training tests' runs
    add up to many GB, so a module's folders go at its end unless one of its tests failed.
    A session-scoped fixture that needs a folder names it ``session-...`` (kept to the end).
    """
    base = tmp_path_factory.getbasetemp()
    before = set(base.iterdir())
    yield
    if request.module.__name__ in _FAILED_MODULES:
        return
    for entry in set(base.iterdir()) - before:
        if entry.is_dir() and not entry.is_symlink() and not entry.name.startswith("session-"):
            shutil.rmtree(entry, ignore_errors=True)


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's torch work on one thread, restored afterwards.

    Small convolutions run fastest on one thread, and a shared 2-core machine is not
    oversubscribed; results do not depend on it. Use with
    ``pytestmark = pytest.mark.usefixtures("torch_one_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
