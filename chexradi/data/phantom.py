"""A deterministic synthetic frontal (PA) chest radiograph generator with ChestX-ray14 findings.

The phantom is the default dataset of the ChexRadiNet loop when no real data is
present: a CNN must be able to learn the classes from the images, and radiomics
features computed inside lesion masks must carry information, so lesions differ
in *texture* as well as in shape and position.

Conventions
-----------
- Images are float32 in [0, 1], "density" display (MONOCHROME2): brighter = denser.
- Image orientation is the usual PA display: the patient's right is on the image
  *left*. The heart therefore sits mostly right of the image centre (the patient's
  left); the right hemidiaphragm (image left) is higher than the left one, and the
  gastric bubble lies under the left dome (image right).
- The field of view is a nominal ``FOV_MM`` = 350 mm, so one pixel is ``350 / size``
  mm; lesion sizes are drawn in mm and converted. Written PNGs and masks carry
  the reader's default spacing (1.0, 1.0), like ChestX-ray14's PNGs.
- Boxes are ``(x, y, w, h)`` in pixels, ChestX-ray14 ``BBox_List_2017.csv``
  convention: ``x`` = column and ``y`` = row of the top-left pixel; every box is the
  tight bounding box of the class's mask (for Cardiomegaly the mask is the heart).
- Class names are spelled as in ChestX-ray14's ``Data_Entry_2017.csv`` (also in
  ``boxes.csv``, where the NIH file spells "Infiltrate").

Determinism
-----------
Case ``i`` is a pure function of ``(seed, i, size, difficulty, classes, prevalence)``:
every case draws from its own ``numpy.random.SeedSequence(seed, spawn_key=(i, stream))``
streams (one for anatomy, one for noise, one per class keyed by the class's
position in ``KNOWN_CLASSES``). Generating 10 cases or the first 10 of 100 gives
identical images, and a class's presence and geometry do not depend on which other
classes are requested. How a case is drawn, step by step, is in
:mod:`chexradi.data.phantom_render`; this module checks the settings, builds each case's
ground truth (labels, boxes, masks) and writes phantom folders. ``make_case(..., suppress=("Mass",))`` renders the same case
without the Mass (same anatomy, same noise, same other lesions): the lesion-free
reference used to measure a lesion's contrast.

Versions
--------
``version=2`` (the default) draws findings a 128-px image shows, each with a texture
signature, at strengths calibrated on the image-only arm (:mod:`chexradi.data.phantom_v2`
says what differs and why). ``version=1`` is the phantom as it was first written, drawn the
same to the bit (its drawing is pinned by a test); its findings are described below, and
version 2 keeps its conventions, anatomy, noise and random streams.

Findings (independent Bernoulli draws with ``prevalence``; none = "No Finding")
-------------------------------------------------------------------------------

============  =======================================================================
Nodule        round, 5-15 mm, sharp edge, bright, fine-grained internal texture.
Mass          30-60 mm, lobulated outline, coarse heterogeneous texture with darker
              (necrotic-looking) patches.
Effusion      meniscus-shaped homogeneous opacity at one costophrenic angle (higher
              laterally, smooth concave upper border), blunting the angle.
Cardiomegaly  the heart enlarged to a cardiothoracic ratio of 0.55-0.68 (normal
              0.41-0.47); the mask and box are the heart's.
Pneumothorax  apicolateral lucent rim without lung markings between the chest
              wall and a thin bright visceral pleural line (the collapsed lung edge).
Infiltration  patchy ill-defined opacity with a reticular (net-like) and mottled
              texture.
============  =======================================================================

All lesion masks except Cardiomegaly lie inside ``lung_mask``. ``difficulty`` in
[0, 1] scales anatomical variation (scale, shift, rotation up to about 5 degrees,
brightness/contrast), noise (quantum noise, film grain, low-frequency background)
up and lesion contrast down (at difficulty 1 lesions keep 35 % of their contrast
at difficulty 0; Cardiomegaly's enlargement shrinks towards the 0.5 threshold).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from .._io import atomic_path, atomic_write, sync_folders
from ..names import PHANTOM_CLASSES, PHANTOM_VERSIONS
from . import phantom_v2
from .phantom_render import FINDINGS_V1, Box, Findings, cardiothoracic_ratio, draw, mask_box

__all__ = [
    "DEFAULT_CLASSES", "KNOWN_CLASSES", "DEFAULT_PREVALENCE", "NO_FINDING", "FOV_MM", "PHANTOM_VERSION",
    "PHANTOM_VERSIONS",
    "PhantomCase", "PhantomSet", "PhantomWritten", "make_case", "generate", "write_phantom", "image_name",
    "cardiothoracic_ratio", "mask_box",
]

log = logging.getLogger(__name__)

#: The version drawn by default, and every version that can be drawn.
PHANTOM_VERSION = "2"
DEFAULT_CLASSES: tuple[str, ...] = PHANTOM_CLASSES
KNOWN_CLASSES: tuple[str, ...] = DEFAULT_CLASSES
DEFAULT_PREVALENCE = 0.25
NO_FINDING = "No Finding"
FOV_MM = 350.0
MIN_SIZE = 64

PathLike = Union[str, "os.PathLike[str]"]


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------
@dataclass
class PhantomCase:
    """One synthetic radiograph and its ground truth.

    Attributes
    ----------
    index : int
        Case number (the ``i`` of ``make_case``).
    image : numpy.ndarray
        float32 ``(size, size)`` in [0, 1]; brighter = denser.
    labels : numpy.ndarray
        float32 ``(K,)`` 0/1 in the order of ``class_names``.
    boxes : dict
        Class -> ``(x, y, w, h)`` tight box of its mask, for present classes only.
    masks : dict
        Class -> bool ``(size, size)`` lesion mask, for present classes only.
    lung_mask : numpy.ndarray
        bool, both lung fields (the heart and mediastinum excluded).
    heart_mask : numpy.ndarray
        bool, the cardiac silhouette (above the diaphragm).
    class_names : tuple of str
        The classes ``labels`` refers to.
    meta : dict
        Cardiothoracic ratio, transform, lesion sides/sizes, nominal pixel size.
    """

    index: int
    image: np.ndarray
    labels: np.ndarray
    boxes: dict[str, Box]
    masks: dict[str, np.ndarray]
    lung_mask: np.ndarray
    heart_mask: np.ndarray
    class_names: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def findings(self) -> list[str]:
        """Present classes (sorted), or ``["No Finding"]``."""
        present = sorted(c for c, v in zip(self.class_names, self.labels) if v > 0)
        return present or [NO_FINDING]


@dataclass
class PhantomSet:
    """``n`` cases: stacked images and labels, per-case boxes; ``set[i]`` / ``set.case(i)`` give a PhantomCase."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    boxes: list[dict[str, Box]]
    settings: dict[str, Any]
    cases: list[PhantomCase] = field(repr=False, default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> PhantomCase:
        return self.case(i)

    def case(self, i: int) -> PhantomCase:
        """The ``i``-th case with its masks (negative indices count from the end)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"case {i} out of range for a phantom set of {n} case(s).")
        return self.cases[i % n]

    @property
    def image_names(self) -> list[str]:
        """File names ``write_phantom`` gives the images (``phantom_00000.png``, ...)."""
        return [image_name(c.index) for c in self.cases]


@dataclass
class PhantomWritten:
    """What ``write_phantom`` wrote."""

    out: Path
    n: int
    class_counts: dict[str, int]
    no_finding: int
    settings: dict[str, Any]

    def summary(self) -> str:
        counts = ", ".join(f"{c} {k}" for c, k in self.class_counts.items())
        return (f"{self.n} phantom image(s) (version {self.settings['version']}, "
                f"{self.settings['size']}x{self.settings['size']}, seed "
                f"{self.settings['seed']}, difficulty {self.settings['difficulty']:g}) -> {self.out}: "
                f"{counts}, {NO_FINDING} {self.no_finding}")


def image_name(index: int) -> str:
    """``phantom_00007.png`` for case 7."""
    return f"phantom_{index:05d}.png"


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
def _check_settings(size: int, seed: int, difficulty: float, classes: Sequence[str],
                    prevalence: Union[None, float, Mapping[str, float], Sequence[float]]
                    ) -> tuple[int, int, float, tuple[str, ...], tuple[float, ...]]:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE} (pixels per side), got {size!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    try:
        d = float(difficulty)
    except (TypeError, ValueError):
        raise ValueError(f"difficulty must be a number in [0, 1], got {difficulty!r}.") from None
    if not (0.0 <= d <= 1.0):
        raise ValueError(f"difficulty must be in [0, 1] (0 easiest, 1 hardest), got {difficulty!r}.")
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    names = tuple(classes)
    if not names:
        raise ValueError(f"classes is empty; give some of {', '.join(KNOWN_CLASSES)}.")
    unknown = [c for c in names if c not in KNOWN_CLASSES]
    if unknown:
        raise ValueError(f"unknown class name(s) {', '.join(map(repr, unknown))}; the phantom knows "
                         f"{', '.join(KNOWN_CLASSES)} (ChestX-ray14 spelling).")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ValueError(f"classes lists {', '.join(dup)} more than once.")
    if prevalence is None:
        prev = tuple(DEFAULT_PREVALENCE for _ in names)
    elif isinstance(prevalence, Mapping):
        extra = [c for c in prevalence if c not in names]
        if extra:
            raise ValueError(f"prevalence names class(es) {', '.join(map(repr, extra))} not in classes "
                             f"({', '.join(names)}).")
        prev = tuple(float(prevalence.get(c, DEFAULT_PREVALENCE)) for c in names)
    elif isinstance(prevalence, (int, float, np.floating, np.integer)) and not isinstance(prevalence, bool):
        prev = tuple(float(prevalence) for _ in names)
    else:
        prev = tuple(float(p) for p in prevalence)
        if len(prev) != len(names):
            raise ValueError(f"prevalence has {len(prev)} value(s) but there are {len(names)} classes; give one "
                             "per class, a single number, or a mapping class -> probability.")
    bad = [p for p in prev if not (0.0 <= p <= 1.0)]
    if bad:
        raise ValueError(f"prevalence values must be probabilities in [0, 1], got {bad}.")
    return int(size), int(seed), d, names, prev


def _check_version(version: Union[int, str]) -> str:
    v = str(version).strip() if isinstance(version, (int, str)) and not isinstance(version, bool) else None
    if v not in PHANTOM_VERSIONS:
        raise ValueError(f"version must be one of {', '.join(PHANTOM_VERSIONS)} (the phantom's drawing; "
                         f"{PHANTOM_VERSION} is the default), got {version!r}")
    return v


def _check_strength(strength: Optional[Mapping[str, float]], version: str) -> Optional[dict[str, float]]:
    """Version 2's per-class strengths over its calibrated defaults (None: the defaults)."""
    if strength is None:
        return None
    if version == "1":
        raise ValueError("strength applies to phantom version 2; version 1 is drawn as it always was "
                         "(drop strength, or use version=2)")
    if not isinstance(strength, Mapping):
        raise ValueError(f"strength must be a mapping class -> factor (e.g. {{'Nodule': 1.5}}), got {strength!r}")
    unknown = [c for c in strength if c not in KNOWN_CLASSES]
    if unknown:
        raise ValueError(f"strength: unknown class name(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(KNOWN_CLASSES)}")
    out: dict[str, float] = {}
    for c, v in strength.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not (
                0.0 < float(v) < float("inf")):
            raise ValueError(f"strength[{c!r}] must be a finite number > 0 (a factor on the finding's contrast; "
                             f"leave the class out of classes to draw no such finding), got {v!r}")
        out[c] = float(v)
    return out


def _findings(version: str, strength: Optional[dict[str, float]]) -> Findings:
    return FINDINGS_V1 if version == "1" else phantom_v2.findings(strength)


def _check_names(names: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = [names]
    unknown = [c for c in names if c not in KNOWN_CLASSES]
    if unknown:
        raise ValueError(f"{what}: unknown class name(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(KNOWN_CLASSES)}.")
    return tuple(names)


# ------------------------------------------------------------------------------------------------
# the case
# ------------------------------------------------------------------------------------------------
def make_case(index: int, *, size: int = 256, seed: int = 0, difficulty: float = 0.5,
              classes: Sequence[str] = DEFAULT_CLASSES,
              prevalence: Union[None, float, Mapping[str, float], Sequence[float]] = None,
              suppress: Sequence[str] = (), force: Sequence[str] = (), version: Union[int, str] = PHANTOM_VERSION,
              strength: Optional[Mapping[str, float]] = None) -> PhantomCase:
    """Render case ``index`` of the phantom defined by ``(seed, size, difficulty, classes, prevalence)``.

    Parameters
    ----------
    index : int
        Case number, >= 0.
    size : int
        Image side in pixels (>= 64).
    seed : int
        Non-negative seed of the whole phantom.
    difficulty : float
        0 (little variation and noise, strong lesions) to 1 (much variation and noise, subtle lesions).
    classes : sequence of str
        Classes that may occur, a subset of ``KNOWN_CLASSES``; ``labels`` follows this order.
    prevalence : None, float, mapping or sequence
        Probability that each class is present (independently); default 0.25 each.
    suppress : sequence of str
        Classes rendered absent whatever their draw (the rest of the case is unchanged): the
        lesion-free reference of a case.
    force : sequence of str
        Classes rendered present whatever their draw (must be among ``classes``).
    version : {2, 1}
        The phantom's drawing (see the module docstring); 1 reproduces the first phantom to the bit.
    strength : mapping, optional
        Version 2 only: class -> factor (> 0) on that finding's contrast, instead of the calibrated
        :data:`chexradi.data.phantom_v2.STRENGTH`.

    Returns
    -------
    PhantomCase

    Raises
    ------
    ValueError
        Invalid size, seed, difficulty, class names, prevalence, suppress/force names, index, version or
        strength.
    """
    size, seed, difficulty, names, prev = _check_settings(size, seed, difficulty, classes, prevalence)
    version = _check_version(version)
    strength = _check_strength(strength, version)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}.")
    suppress = _check_names(suppress, "suppress")
    force = _check_names(force, "force")
    not_requested = [c for c in force if c not in names]
    if not_requested:
        raise ValueError(f"force: {', '.join(not_requested)} not among classes ({', '.join(names)}).")
    return _render(int(index), size, seed, difficulty, names, prev, set(suppress), set(force),
                   _findings(version, strength))


def _render(index: int, size: int, seed: int, difficulty: float, names: tuple[str, ...],
            prev: tuple[float, ...], suppress: set[str], force: set[str], findings: Findings) -> PhantomCase:
    """Draw the case (:func:`~chexradi.data.phantom_render.draw`) and build its ground truth."""
    d = draw(index, size, seed, difficulty, names, tuple(KNOWN_CLASSES.index(c) for c in names), prev,
             suppress, force, FOV_MM, findings)
    labels = np.zeros(len(names), dtype=np.float32)
    boxes: dict[str, Box] = {}
    out_masks: dict[str, np.ndarray] = {}
    for i, c in enumerate(names):
        if not d.present[c]:
            continue
        box = mask_box(d.masks[c])
        if box is None:  # cannot happen with the placement the drawing does; keep labels == masks anyway
            log.warning("phantom case %d: %s mask came out empty; the class is dropped", index, c)
            continue
        labels[i] = 1.0
        boxes[c] = box
        out_masks[c] = d.masks[c]
    return PhantomCase(index=index, image=d.image, labels=labels, boxes=boxes, masks=out_masks,
                       lung_mask=d.lung_mask, heart_mask=d.heart_mask, class_names=names, meta=d.meta)


# ------------------------------------------------------------------------------------------------
# many cases
# ------------------------------------------------------------------------------------------------
def _settings(n: int, size: int, seed: int, difficulty: float, names: tuple[str, ...],
              prev: tuple[float, ...], version: str, findings: Findings) -> dict[str, Any]:
    out = {"n": n, "size": size, "seed": seed, "difficulty": difficulty, "classes": list(names),
           "prevalence": dict(zip(names, prev)), "fov_mm": FOV_MM, "version": version}
    if findings.strength is not None:  # version 2 and later: the strength of every class
        out["strength"] = dict(findings.strength)
    return out


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1 (number of images), got {n!r}.")
    return int(n)


def generate(n: int, *, size: int = 256, seed: int = 0, difficulty: float = 0.5,
             classes: Sequence[str] = DEFAULT_CLASSES,
             prevalence: Union[None, float, Mapping[str, float], Sequence[float]] = None,
             version: Union[int, str] = PHANTOM_VERSION,
             strength: Optional[Mapping[str, float]] = None) -> PhantomSet:
    """Cases ``0 .. n-1`` of the phantom, in memory.

    Parameters are those of :func:`make_case`; ``n`` >= 1. The first ``m`` cases of
    ``generate(n)`` equal ``generate(m)`` for any ``m <= n``.

    Raises
    ------
    ValueError
        Invalid ``n`` or settings (see :func:`make_case`).
    """
    n = _check_n(n)
    size, seed, difficulty, names, prev = _check_settings(size, seed, difficulty, classes, prevalence)
    version = _check_version(version)
    findings = _findings(version, _check_strength(strength, version))
    images = np.empty((n, size, size), dtype=np.float32)
    labels = np.empty((n, len(names)), dtype=np.float32)
    cases: list[PhantomCase] = []
    for i in range(n):
        c = _render(i, size, seed, difficulty, names, prev, set(), set(), findings)
        images[i] = c.image
        c.image = images[i]
        labels[i] = c.labels
        cases.append(c)
    return PhantomSet(images=images, labels=labels, class_names=names, boxes=[c.boxes for c in cases],
                      settings=_settings(n, size, seed, difficulty, names, prev, version, findings), cases=cases)


def _versions() -> dict[str, str]:
    import scipy

    from .. import __version__

    return {"chexradi": __version__, "numpy": np.__version__, "scipy": scipy.__version__}


def _write_png16(image: np.ndarray, path: Path) -> None:
    """Atomically, without an fsync: :func:`write_phantom` makes its files durable at once at the end."""
    from PIL import Image

    arr = np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    with atomic_path(path, suffix=".tmp.png", sync=False) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def write_phantom(out_dir: PathLike, n: int, *, size: int = 256, seed: int = 0, difficulty: float = 0.5,
                  classes: Sequence[str] = DEFAULT_CLASSES,
                  prevalence: Union[None, float, Mapping[str, float], Sequence[float]] = None,
                  masks: bool = False, overwrite: bool = False, version: Union[int, str] = PHANTOM_VERSION,
                  strength: Optional[Mapping[str, float]] = None) -> PhantomWritten:
    """Write ``n`` phantom cases as a ChestX-ray14-like folder.

    Layout::

        OUT/images/phantom_00000.png             16-bit grey PNG (value = round(image * 65535))
        OUT/labels.csv                           Image Index, Finding Labels ("A|B" or "No Finding"), one 0/1
                                                 column per class
        OUT/boxes.csv                            Image Index, Finding Label, x, y, w, h (one row per finding)
        OUT/reports.csv                          Image Index, findings, impression, hedged, negated: each
                                                 image's report written from its ground truth
                                                 (:mod:`chexradi.data.phantom_reports`)
        OUT/masks/phantom_00000_<class>.nrrd     with ``masks=True``: each finding's mask, and
        OUT/masks/phantom_00000_lungs.nrrd       the lung fields (label 1, spacing 1.0 like the PNG)
        OUT/phantom.json                         settings, class names, counts, versions (written last)

    Every file is written atomically; running again with the same arguments rewrites
    identical bytes.

    Raises
    ------
    ValueError
        Invalid ``n``/settings; ``out_dir`` is a file; ``out_dir`` holds a phantom made
        with other settings and ``overwrite`` is False.
    """
    n = _check_n(n)
    size, seed, difficulty, names, prev = _check_settings(size, seed, difficulty, classes, prevalence)
    version = _check_version(version)
    findings = _findings(version, _check_strength(strength, version))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} is a file; give a folder (it is created if missing).")
    settings = _settings(n, size, seed, difficulty, names, prev, version, findings)
    meta_path = out / "phantom.json"
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text(encoding="utf-8")).get("settings", {})
        except (OSError, ValueError, AttributeError):
            old = None
        if old != settings and not overwrite:
            raise ValueError(f"{out} already holds a phantom made with other settings ({meta_path}); use another "
                             "folder or overwrite=True (--overwrite) to replace it.")
    from .lungs import save_mask

    img_dir, mask_dir = out / "images", out / "masks"
    from .phantom_reports import write_report

    label_rows: list[list[Any]] = []
    box_rows: list[list[Any]] = []
    report_rows: list[list[Any]] = []
    counts = {c: 0 for c in names}
    no_finding = 0
    keep_images: set[str] = set()
    keep_masks: set[str] = set()
    for i in range(n):
        case = _render(i, size, seed, difficulty, names, prev, set(), set(), findings)
        name = image_name(i)
        keep_images.add(name)
        _write_png16(case.image, img_dir / name)
        present = case.findings
        no_finding += present == [NO_FINDING]
        for c in names:
            counts[c] += int(c in case.boxes)
        label_rows.append([name, "|".join(present)] + [int(v) for v in case.labels])
        rep = write_report(case, seed=seed)
        report_rows.append([name, rep.findings, rep.impression, "|".join(rep.hedged), "|".join(rep.negated)])
        for c in sorted(case.boxes):
            box_rows.append([name, c, *case.boxes[c]])
        if masks:
            stem = name[:-4]
            for c, m in [*sorted(case.masks.items()), ("lungs", case.lung_mask)]:
                mname = f"{stem}_{c}.nrrd"
                keep_masks.add(mname)
                save_mask(m.astype(np.uint8), (1.0, 1.0), mask_dir / mname, sync=False)
    # images and masks made durable at once, before phantom.json says the folder is complete
    sync_folders([img_dir, mask_dir] if masks else [img_dir])

    if overwrite:  # remove what an earlier, different phantom left behind
        stale = ((img_dir, keep_images, "phantom_*.png"), (mask_dir, keep_masks, "phantom_*.nrrd"))
        for folder, keep, pattern in stale:
            if folder.is_dir():
                for p in folder.glob(pattern):
                    if p.name not in keep:
                        p.unlink()

    def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        with atomic_write(path, newline="") as fh:
            fh.write(buf.getvalue())

    _csv(out / "labels.csv", ["Image Index", "Finding Labels", *names], label_rows)
    _csv(out / "boxes.csv", ["Image Index", "Finding Label", "x", "y", "w", "h"], box_rows)
    _csv(out / "reports.csv", ["Image Index", "findings", "impression", "hedged", "negated"], report_rows)
    info = {
        "kind": "chexradi-phantom",
        "version": version,
        "seed": seed,
        "class_names": list(names),
        "settings": settings,
        "masks": bool(masks),
        "counts": {**counts, NO_FINDING: no_finding},
        "box_convention": "x=column, y=row of the top-left pixel, w, h in pixels (BBox_List_2017.csv)",
        "png": "16-bit grey, value = round(image * 65535); brighter = denser (MONOCHROME2)",
        "nominal_pixel_mm": FOV_MM / size,
        "versions": _versions(),
    }
    with atomic_write(meta_path) as fh:
        fh.write(json.dumps(info, indent=2) + "\n")
    return PhantomWritten(out=out, n=n, class_counts=counts, no_finding=no_finding, settings=settings)
