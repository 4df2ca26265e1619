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
classes are requested. ``make_case(..., suppress=("Mass",))`` renders the same case
without the Mass (same anatomy, same noise, same other lesions): the lesion-free
reference used to measure a lesion's contrast.

Findings (independent Bernoulli draws with ``prevalence``; none = "No Finding")
------------------------------------------------------------------------------
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
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from scipy import ndimage as ndi

from .._io import atomic_path, atomic_write

__all__ = [
    "DEFAULT_CLASSES", "KNOWN_CLASSES", "DEFAULT_PREVALENCE", "NO_FINDING", "FOV_MM", "PHANTOM_VERSION",
    "PhantomCase", "PhantomSet", "PhantomWritten", "make_case", "generate", "write_phantom", "image_name",
    "cardiothoracic_ratio", "mask_box",
]

log = logging.getLogger(__name__)

PHANTOM_VERSION = "1"
DEFAULT_CLASSES: tuple[str, ...] = ("Nodule", "Mass", "Effusion", "Cardiomegaly", "Pneumothorax", "Infiltration")
KNOWN_CLASSES: tuple[str, ...] = DEFAULT_CLASSES
DEFAULT_PREVALENCE = 0.25
NO_FINDING = "No Finding"
FOV_MM = 350.0
MIN_SIZE = 64

_STREAM_ANATOMY = 0
_STREAM_NOISE = 1
_STREAM_CLASS0 = 10  # + position in KNOWN_CLASSES

Box = tuple[int, int, int, int]
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
        return (f"{self.n} phantom image(s) ({self.settings['size']}x{self.settings['size']}, seed "
                f"{self.settings['seed']}, difficulty {self.settings['difficulty']:g}) -> {self.out}: "
                f"{counts}, {NO_FINDING} {self.no_finding}")


def image_name(index: int) -> str:
    """``phantom_00007.png`` for case 7."""
    return f"phantom_{index:05d}.png"


def mask_box(mask: np.ndarray) -> Optional[Box]:
    """Tight ``(x, y, w, h)`` box of a boolean mask (x = column, y = row), or None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def cardiothoracic_ratio(heart_mask: np.ndarray, lung_mask: np.ndarray) -> float:
    """Maximal horizontal heart width over the thoracic width (outer lung borders), from masks."""
    hb, lb = mask_box(heart_mask), mask_box(lung_mask)
    if hb is None or lb is None:
        raise ValueError("cardiothoracic_ratio needs a non-empty heart mask and lung mask.")
    return hb[2] / lb[2]


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


def _check_names(names: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = [names]
    unknown = [c for c in names if c not in KNOWN_CLASSES]
    if unknown:
        raise ValueError(f"{what}: unknown class name(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(KNOWN_CLASSES)}.")
    return tuple(names)


# ------------------------------------------------------------------------------------------------
# drawing helpers
# ------------------------------------------------------------------------------------------------
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, stream)))


def _norm(a: np.ndarray, where: Optional[np.ndarray] = None) -> np.ndarray:
    v = a[where] if where is not None and where.any() else a
    sd = float(v.std())
    return (a - float(v.mean())) / (sd if sd > 0 else 1.0)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = rng.standard_normal(shape)
    return _norm(ndi.gaussian_filter(n, sigma, mode="reflect")) if sigma > 0.3 else n


@dataclass
class _Geometry:
    """Per-case canonical anatomy parameters (normalised image units, 0..1)."""

    cx: tuple[float, float]      # lung centres (image-left = patient's right, image-right)
    cy: float
    ax: tuple[float, float]
    ay_top: float
    ay_bot: float
    dome_x: tuple[float, float]
    dome_y: tuple[float, float]
    dome_k: float
    heart_y: float
    heart_hh: float
    ctr_normal: float
    rib_y0: np.ndarray
    clav_y: float
    scale: float
    shift: tuple[float, float]
    angle_deg: float
    gain: float
    offset: float

    @property
    def thoracic_width(self) -> float:
        return (self.cx[1] + self.ax[1]) - (self.cx[0] - self.ax[0])

    def dome(self, x: np.ndarray) -> np.ndarray:
        right = self.dome_y[0] + self.dome_k * (x - self.dome_x[0]) ** 2
        left = self.dome_y[1] + self.dome_k * (x - self.dome_x[1]) ** 2
        return np.where(x < 0.5, right, left)


def _draw_geometry(rng: np.random.Generator, difficulty: float) -> _Geometry:
    z = rng.standard_normal(24)
    u = rng.random(8)
    v = 0.3 + 0.7 * difficulty  # amount of anatomical variation
    return _Geometry(
        cx=(0.305 + 0.008 * v * z[0], 0.695 + 0.008 * v * z[1]),
        cy=0.465 + 0.01 * v * z[2],
        ax=(0.150 * (1 + 0.04 * v * z[3]), 0.145 * (1 + 0.04 * v * z[4])),
        ay_top=0.31 * (1 + 0.04 * v * z[5]),
        ay_bot=0.36 * (1 + 0.04 * v * z[6]),
        dome_x=(0.32 + 0.01 * v * z[7], 0.68 + 0.01 * v * z[8]),
        dome_y=(0.705 + 0.012 * v * z[9], 0.735 + 0.012 * v * z[10]),
        dome_k=2.6 * (1 + 0.1 * v * z[11]),
        heart_y=0.625 + 0.01 * v * z[12],
        heart_hh=0.118 * (1 + 0.05 * v * z[13]),
        ctr_normal=0.41 + 0.06 * float(u[0]),
        rib_y0=0.115 + 0.062 * np.arange(10) + 0.004 * v * z[14:24],
        clav_y=0.175 + 0.01 * v * float(u[1] - 0.5),
        scale=1.0 + 0.05 * v * float(np.clip(z[15] * 0.7 + z[16] * 0.7, -2.5, 2.5)),
        shift=(0.025 * v * float(2 * u[2] - 1), 0.025 * v * float(2 * u[3] - 1)),
        angle_deg=5.0 * v * float(2 * u[4] - 1),
        gain=1.0 + 0.12 * v * float(2 * u[5] - 1),
        offset=0.05 * v * float(2 * u[6] - 1),
    )


def _canonical_grid(size: int, g: _Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Canonical anatomy coordinates (qx, qy) of every pixel centre after the per-case similarity transform."""
    p = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(p, p)
    t = math.radians(g.angle_deg)
    dx, dy = x - 0.5 - g.shift[0], y - 0.5 - g.shift[1]
    qx = (math.cos(t) * dx + math.sin(t) * dy) / g.scale + 0.5
    qy = (-math.sin(t) * dx + math.cos(t) * dy) / g.scale + 0.5
    return qx, qy


def _heart_raw(qx: np.ndarray, qy: np.ndarray, g: _Geometry, ctr: float) -> np.ndarray:
    w = ctr * g.thoracic_width
    hx = 0.5 + w / 6.0  # one third right of the midline (patient's right), two thirds left
    hh = g.heart_hh * (1.0 + 0.6 * (ctr / 0.44 - 1.0))
    ell = ((qx - hx) / (w / 2)) ** 2 + ((qy - g.heart_y) / hh) ** 2 < 1.0
    return ell & (qy < g.dome(qx) + 0.01)


def _lung_raw(qx: np.ndarray, qy: np.ndarray, g: _Geometry, side: int) -> np.ndarray:
    dx = np.abs(qx - g.cx[side]) / g.ax[side]
    top = qy < g.cy
    dy = np.abs(qy - g.cy) / np.where(top, g.ay_top, g.ay_bot)
    inside = np.where(top, dx ** 2 + dy ** 2, dx ** 4 + dy ** 4) < 1.0
    inside &= qy < g.dome(qx)
    inside &= np.abs(qx - 0.5) > 0.045
    if side == 1:  # aortic knob
        inside &= (qx - 0.553) ** 2 + (qy - 0.30) ** 2 > 0.038 ** 2
    return inside


def _band(d: np.ndarray, half: float, cortex: float) -> np.ndarray:
    """A bone band across distance ``d`` from its centre line: flat-topped body plus brighter cortical edges."""
    body = np.exp(-((d / half) ** 4))
    edges = np.exp(-(((np.abs(d) - half) / cortex) ** 2))
    return 0.7 * body + 0.5 * edges


# ------------------------------------------------------------------------------------------------
# the case
# ------------------------------------------------------------------------------------------------
def make_case(index: int, *, size: int = 256, seed: int = 0, difficulty: float = 0.5,
              classes: Sequence[str] = DEFAULT_CLASSES,
              prevalence: Union[None, float, Mapping[str, float], Sequence[float]] = None,
              suppress: Sequence[str] = (), force: Sequence[str] = ()) -> PhantomCase:
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

    Returns
    -------
    PhantomCase

    Raises
    ------
    ValueError
        Invalid size, seed, difficulty, class names, prevalence, suppress/force names or index.
    """
    size, seed, difficulty, names, prev = _check_settings(size, seed, difficulty, classes, prevalence)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}.")
    suppress = _check_names(suppress, "suppress")
    force = _check_names(force, "force")
    not_requested = [c for c in force if c not in names]
    if not_requested:
        raise ValueError(f"force: {', '.join(not_requested)} not among classes ({', '.join(names)}).")
    return _render(int(index), size, seed, difficulty, names, prev, set(suppress), set(force))


def _render(index: int, size: int, seed: int, difficulty: float, names: tuple[str, ...],
            prev: tuple[float, ...], suppress: set[str], force: set[str]) -> PhantomCase:
    S = size
    k = S / 256.0  # pixel-scale factor for filters defined at 256 px
    mm = FOV_MM / S  # nominal mm per pixel
    cf = 1.0 - 0.65 * difficulty  # lesion contrast factor

    # labels: first draw of each class's own stream
    class_rng: dict[str, np.random.Generator] = {}
    present: dict[str, bool] = {}
    for c, p in zip(names, prev):
        r = _rng(seed, index, _STREAM_CLASS0 + KNOWN_CLASSES.index(c))
        drawn = bool(r.random() < p)
        class_rng[c] = r
        present[c] = (drawn or c in force) and c not in suppress

    ga = _rng(seed, index, _STREAM_ANATOMY)
    g = _draw_geometry(ga, difficulty)
    qx, qy = _canonical_grid(S, g)
    rows, cols = np.mgrid[0:S, 0:S]

    ctr_target = g.ctr_normal
    meta: dict[str, Any] = {"nominal_pixel_mm": mm, "difficulty": difficulty,
                            "transform": {"scale": g.scale, "shift": g.shift, "angle_deg": g.angle_deg,
                                          "gain": g.gain, "offset": g.offset}}
    if present.get("Cardiomegaly"):
        r = class_rng["Cardiomegaly"]
        ctr_target = 0.545 + (0.05 + 0.085 * float(r.random())) * (1.0 - 0.55 * difficulty)

    heart_raw = _heart_raw(qx, qy, g, ctr_target)
    heart_max = _heart_raw(qx, qy, g, 0.72)
    sig_lung = 0.008 * S
    lung_soft_side, lung_side, place_side = [], [], []
    for side in (0, 1):
        raw = _lung_raw(qx, qy, g, side)
        soft = ndi.gaussian_filter((raw & ~heart_raw).astype(np.float64), sig_lung)
        lung_soft_side.append(soft)
        lung_side.append(soft > 0.5)
        # where lesions are placed: the lung without the largest heart the phantom draws, so that
        # placement does not depend on Cardiomegaly
        place_side.append(ndi.gaussian_filter((raw & ~heart_max).astype(np.float64), sig_lung) > 0.5)
    lung_soft = lung_soft_side[0] + lung_soft_side[1]
    lung_mask = lung_side[0] | lung_side[1]
    heart_mask = heart_raw.copy()

    # ---- anatomy (density) ------------------------------------------------------------------
    body_level = np.abs((qx - 0.5) / 0.455) ** 3 + np.abs((qy - 0.64) / 0.62) ** 3 - 1.0
    body = _sigmoid(-body_level / 0.05)
    neck = _sigmoid((0.085 - np.abs(qx - 0.5)) / 0.008) * _sigmoid((0.25 - qy) / 0.01)
    body = np.maximum(body, neck)
    dens = 0.04 + 0.50 * body
    below = _sigmoid((qy - g.dome(qx)) / 0.006) * body
    dens += 0.10 * below
    gastric = ((qx - 0.66) / 0.05) ** 2 + ((qy - g.dome_y[1] - 0.055) / 0.03) ** 2
    dens -= 0.10 * _sigmoid((1.0 - gastric) / 0.15) * below
    dens -= 0.34 * lung_soft * (1.05 - 0.25 * np.clip((qy - 0.15) / 0.6, 0, 1))
    dens += 0.05 * ndi.gaussian_filter(heart_raw.astype(np.float64), 0.004 * S)
    # spine with vertebral bodies, trachea, aortic knob
    spine = _sigmoid((0.034 - np.abs(qx - 0.5)) / 0.004) * (1.0 + 0.25 * np.cos(2 * np.pi * qy / 0.052))
    dens += 0.07 * spine * body
    trachea = _sigmoid((0.012 - np.abs(qx - 0.5)) / 0.003) * _sigmoid((0.40 - qy) / 0.01) * _sigmoid((qy - 0.04) / 0.01)
    dens -= 0.09 * trachea
    dens += 0.04 * _sigmoid((0.038 ** 2 - (qx - 0.553) ** 2 - (qy - 0.30) ** 2) / 0.0004)
    # posterior ribs: curved bands from the spine, rising a little and turning down laterally
    t = np.abs(qx - 0.5)
    lateral = _sigmoid((t - 0.035) / 0.008) * _sigmoid((0.44 - t) / 0.012)
    bones = np.zeros((S, S))
    cage = _sigmoid((g.dome(qx) + 0.05 - qy) / 0.02)
    for j, y0 in enumerate(g.rib_y0):
        yc = y0 - 0.22 * t + 1.3 * t ** 2
        half = 0.011 + 0.0025 * j / 9
        bones += 0.075 * _band(qy - yc, half, 0.0035) * lateral * cage
    # clavicles
    tc = np.clip(t, 0.04, 0.33)
    yc = g.clav_y - 0.20 * (tc - 0.04) + 0.25 * (tc - 0.04) ** 2
    clav_extent = _sigmoid((t - 0.04) / 0.006) * _sigmoid((0.32 - t) / 0.01)
    bones += 0.11 * _band(qy - yc, 0.013, 0.004) * clav_extent
    dens += bones * body
    # lung markings: band-pass noise, strongest near the hila
    bp = ndi.gaussian_filter(ga.standard_normal((S, S)), 1.0 * k) - ndi.gaussian_filter(
        ga.standard_normal((S, S)), 2.5 * k)
    bp = np.clip(_norm(bp), 0, None) ** 1.3
    d_hilum = np.minimum(np.hypot(qx - 0.40, qy - 0.45), np.hypot(qx - 0.60, qy - 0.44))
    vessels = 0.035 * bp * (np.exp(-d_hilum / 0.15) + 0.2) * lung_soft
    dens += 0.07 * np.exp(-(d_hilum / 0.035) ** 2) * np.maximum(lung_soft, 0.3)

    # ---- lesions -------------------------------------------------------------------------------
    masks: dict[str, np.ndarray] = {}
    layers = np.zeros((S, S))
    gap_soft = np.zeros((S, S))

    def place(r_px: float, side: int, rng: np.random.Generator) -> tuple[float, float, float]:
        """A centre (row, col) inside the placement lung at least ``r_px`` from its edge (shrinking r if needed)."""
        dist = ndi.distance_transform_edt(place_side[side])
        cand = np.flatnonzero(dist.ravel() >= r_px + 1.0)
        if cand.size == 0:
            cand = np.flatnonzero(dist.ravel() >= 0.8 * dist.max())
            r_px = max(1.5, 0.9 * float(dist.max()) - 1.0)
        pick = int(cand[rng.integers(cand.size)])
        jit = rng.uniform(-0.3, 0.3, size=2)
        return pick // S + float(jit[0]), pick % S + float(jit[1]), r_px

    if present.get("Nodule"):
        r = class_rng["Nodule"]
        side = int(r.random() < 0.5)
        diam = 5.0 + 10.0 * float(r.random())
        rad = max(1.5, diam / 2 / mm)
        r0, c0, rad = place(rad, side, r)
        d = np.hypot(rows - r0, cols - c0)
        shape = _sigmoid((rad - d) / max(0.25, 0.35 * k))
        tex = 1.0 + 0.22 * _smooth_noise(r, (S, S), 0.45 * k)
        layers += 0.20 * cf * (0.9 + 0.2 * float(r.random())) * shape * tex
        masks["Nodule"] = (shape > 0.5) & lung_mask
        meta["Nodule"] = {"diameter_mm": diam, "side": ("right", "left")[side]}

    if present.get("Mass"):
        r = class_rng["Mass"]
        side = int(r.random() < 0.5)
        diam = 30.0 + 30.0 * float(r.random())
        rad0 = diam / 2 / mm
        amps = r.uniform(0.04, 0.11, size=4)
        phases = r.uniform(0, 2 * np.pi, size=4)
        rmax = rad0 * (1 + float(amps.sum()))
        r0, c0, rfit = place(rmax, side, r)
        rad0 *= min(1.0, rfit / rmax)
        ang = np.arctan2(rows - r0, cols - c0)
        rad_t = rad0 * (1 + sum(a * np.cos(m * ang + ph) for a, m, ph in zip(amps, (2, 3, 4, 5), phases)))
        d = np.hypot(rows - r0, cols - c0)
        shape = _sigmoid((rad_t - d) / max(0.4, 0.9 * k))
        coarse = _smooth_noise(r, (S, S), max(1.0, 0.22 * rad0))
        necrosis = _sigmoid((_smooth_noise(r, (S, S), max(1.0, 0.3 * rad0)) - 1.0) / 0.25)
        tex = np.clip(1.0 + 0.40 * coarse - 0.45 * necrosis, 0.15, None)
        layers += 0.19 * cf * (0.9 + 0.2 * float(r.random())) * shape * tex
        masks["Mass"] = (shape > 0.5) & lung_mask
        meta["Mass"] = {"diameter_mm": diam * min(1.0, rfit / rmax), "side": ("right", "left")[side]}

    if present.get("Infiltration"):
        r = class_rng["Infiltration"]
        side = int(r.random() < 0.5)
        rad = (15.0 + 15.0 * float(r.random())) / mm
        r0, c0, _ = place(0.35 * rad, side, r)
        ell = (((rows - r0) / (rad * r.uniform(0.8, 1.2))) ** 2 + ((cols - c0) / (rad * r.uniform(0.8, 1.2))) ** 2)
        window = _sigmoid((1.0 - ell) / 0.25)
        patch = _sigmoid((_smooth_noise(r, (S, S), max(1.0, rad / 4)) + 0.3) / 0.5)
        env = ndi.gaussian_filter(window * patch, max(0.6, 1.5 * k))
        env *= lung_soft_side[side]
        env /= max(float(env.max()), 1e-9)
        band = _norm(ndi.gaussian_filter(r.standard_normal((S, S)), 0.9 * k)
                     - ndi.gaussian_filter(r.standard_normal((S, S)), 2.2 * k))
        reticular = np.exp(-(band / 0.45) ** 2)  # a net of bright lines along the zero crossings
        mottled = _smooth_noise(r, (S, S), 1.2 * k)
        tex = np.clip(0.35 + 0.75 * reticular + 0.25 * mottled, 0.0, None)
        layers += 0.15 * cf * (0.9 + 0.2 * float(r.random())) * env * tex
        masks["Infiltration"] = (env > 0.4) & lung_mask
        meta["Infiltration"] = {"diameter_mm": 2 * rad * mm, "side": ("right", "left")[side]}

    if present.get("Effusion"):
        r = class_rng["Effusion"]
        side = int(r.random() < 0.5)
        sgn = -1.0 if side == 0 else 1.0
        x_lat = g.cx[side] + sgn * g.ax[side]
        y_cp = float(g.dome(np.array(x_lat - sgn * 0.03)))
        height = (0.25 + 0.2 * float(r.random())) * (y_cp - (g.cy - g.ay_top))
        y_top = y_cp - height
        dd = np.clip(np.abs(qx - x_lat) / (2 * g.ax[side]), 0.0, 1.0)
        y_men = y_top + 0.6 * height * np.sqrt(dd)  # concave meniscus: highest at the lateral chest wall
        fluid = _sigmoid((qy - y_men) / (0.7 / S))
        depth = np.clip((qy - y_men) / height, 0.0, 1.0)
        layers += 0.30 * cf * (0.9 + 0.2 * float(r.random())) * fluid * lung_soft_side[side] * (0.9 + 0.1 * depth)
        masks["Effusion"] = (fluid > 0.5) & lung_side[side]
        meta["Effusion"] = {"side": ("right", "left")[side], "height": height}

    if present.get("Pneumothorax"):
        r = class_rng["Pneumothorax"]
        side = int(r.random() < 0.5)
        f = 0.72 + 0.14 * float(r.random())
        b = mask_box(lung_side[side])
        assert b is not None
        medial_col = b[0] + b[2] - 1 if side == 0 else b[0]
        ar, ac = b[1] + 0.72 * b[3], float(medial_col)
        # the collapsed lung: the lung field shrunk by f towards a medial point low in the hilum region
        src_r = ar + (rows - ar) / f
        src_c = ac + (cols - ac) / f
        collapsed_soft = ndi.map_coordinates(lung_soft_side[side], [src_r, src_c], order=1, mode="constant")
        collapsed = collapsed_soft > 0.5
        upper = _sigmoid((ar - rows) / max(1.0, 2.0 * k))
        gap_soft = np.clip(lung_soft_side[side] - collapsed_soft, 0.0, 1.0) * upper
        gap = (gap_soft > 0.5) & lung_side[side]
        edge = collapsed & ~ndi.binary_erosion(collapsed)
        line = ndi.gaussian_filter(edge.astype(np.float64), max(0.4, 0.5 * k))
        line /= max(float(line.max()), 1e-9)
        line *= ndi.binary_dilation(gap, iterations=2) * upper
        layers += cf * (0.13 * line - 0.09 * gap_soft)
        masks["Pneumothorax"] = gap
        meta["Pneumothorax"] = {"side": ("right", "left")[side], "collapse": f}

    if present.get("Cardiomegaly"):
        masks["Cardiomegaly"] = heart_mask.copy()
    dens += vessels * (1.0 - gap_soft) + layers
    meta["ctr_target"] = ctr_target
    meta["ctr"] = cardiothoracic_ratio(heart_mask, lung_mask)

    # ---- acquisition: contrast, background, noise --------------------------------------------
    gn = _rng(seed, index, _STREAM_NOISE)
    img = g.gain * dens + g.offset
    low = _smooth_noise(gn, (S, S), S / 8.0)
    ang = gn.uniform(0, 2 * np.pi)
    ramp = (np.cos(ang) * (cols / S - 0.5) + np.sin(ang) * (rows / S - 0.5))
    img += (0.012 + 0.04 * difficulty) * low + (0.02 + 0.06 * difficulty) * ramp
    grain = _smooth_noise(gn, (S, S), 0.6 * k)
    img += (0.004 + 0.014 * difficulty) * grain
    img += (0.006 + 0.03 * difficulty) * (0.6 + 0.8 * np.clip(img, 0, 1)) * gn.standard_normal((S, S))
    image = np.clip(img, 0.0, 1.0).astype(np.float32)

    # ---- ground truth ------------------------------------------------------------------------
    labels = np.zeros(len(names), dtype=np.float32)
    boxes: dict[str, Box] = {}
    out_masks: dict[str, np.ndarray] = {}
    for i, c in enumerate(names):
        if not present[c]:
            continue
        box = mask_box(masks[c])
        if box is None:  # cannot happen with the placement above; keep labels == masks anyway
            log.warning("phantom case %d: %s mask came out empty; the class is dropped", index, c)
            continue
        labels[i] = 1.0
        boxes[c] = box
        out_masks[c] = masks[c]
    return PhantomCase(index=index, image=image, labels=labels, boxes=boxes, masks=out_masks, lung_mask=lung_mask,
                       heart_mask=heart_mask, class_names=names, meta=meta)


# ------------------------------------------------------------------------------------------------
# many cases
# ------------------------------------------------------------------------------------------------
def _settings(n: int, size: int, seed: int, difficulty: float, names: tuple[str, ...],
              prev: tuple[float, ...]) -> dict[str, Any]:
    return {"n": n, "size": size, "seed": seed, "difficulty": difficulty, "classes": list(names),
            "prevalence": dict(zip(names, prev)), "fov_mm": FOV_MM, "version": PHANTOM_VERSION}


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1 (number of images), got {n!r}.")
    return int(n)


def generate(n: int, *, size: int = 256, seed: int = 0, difficulty: float = 0.5,
             classes: Sequence[str] = DEFAULT_CLASSES,
             prevalence: Union[None, float, Mapping[str, float], Sequence[float]] = None) -> PhantomSet:
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
    images = np.empty((n, size, size), dtype=np.float32)
    labels = np.empty((n, len(names)), dtype=np.float32)
    cases: list[PhantomCase] = []
    for i in range(n):
        c = _render(i, size, seed, difficulty, names, prev, set(), set())
        images[i] = c.image
        c.image = images[i]
        labels[i] = c.labels
        cases.append(c)
    return PhantomSet(images=images, labels=labels, class_names=names, boxes=[c.boxes for c in cases],
                      settings=_settings(n, size, seed, difficulty, names, prev), cases=cases)


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
                  masks: bool = False, overwrite: bool = False) -> PhantomWritten:
    """Write ``n`` phantom cases as a ChestX-ray14-like folder.

    Layout::

        OUT/images/phantom_00000.png             16-bit grey PNG (value = round(image * 65535))
        OUT/labels.csv                           Image Index, Finding Labels ("A|B" or "No Finding"), one 0/1
                                                 column per class
        OUT/boxes.csv                            Image Index, Finding Label, x, y, w, h (one row per finding)
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
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} is a file; give a folder (it is created if missing).")
    settings = _settings(n, size, seed, difficulty, names, prev)
    meta_path = out / "phantom.json"
    if meta_path.exists():
        try:
            old = json.loads(meta_path.read_text(encoding="utf-8")).get("settings", {})
        except (OSError, ValueError, AttributeError):
            old = None
        if old != settings and not overwrite:
            raise ValueError(f"{out} already holds a phantom made with other settings ({meta_path}); use another "
                             "folder or overwrite=True (--overwrite) to replace it.")
    from .._nrrd import sync_folders
    from .lungs import save_mask

    img_dir, mask_dir = out / "images", out / "masks"
    label_rows: list[list[Any]] = []
    box_rows: list[list[Any]] = []
    counts = {c: 0 for c in names}
    no_finding = 0
    keep_images: set[str] = set()
    keep_masks: set[str] = set()
    for i in range(n):
        case = _render(i, size, seed, difficulty, names, prev, set(), set())
        name = image_name(i)
        keep_images.add(name)
        _write_png16(case.image, img_dir / name)
        present = case.findings
        no_finding += present == [NO_FINDING]
        for c in names:
            counts[c] += int(c in case.boxes)
        label_rows.append([name, "|".join(present)] + [int(v) for v in case.labels])
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
    info = {
        "kind": "chexradi-phantom",
        "version": PHANTOM_VERSION,
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
