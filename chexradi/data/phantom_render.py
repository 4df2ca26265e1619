"""How a phantom case is drawn: anatomy, findings and acquisition, from the case's random streams.

:func:`draw` renders one case of :mod:`chexradi.data.phantom` (which checks the
settings, builds the ground truth and writes files; see its docstring for the
conventions and the findings). The drawing happens in canonical anatomy
coordinates ``(qx, qy)`` in 0..1, mapped to pixels by a per-case similarity
transform, in this order:

1. the labels: the first draw of each class's own stream;
2. the geometry (``_Geometry``, anatomy stream), the heart (enlarged with
   Cardiomegaly) and the lung fields;
3. the anatomy's density (``_anatomy``): body, diaphragm, gastric bubble,
   lungs, heart, spine, trachea, aortic knob, ribs, clavicles, lung markings;
4. each present finding (``_FINDINGS``, in that fixed order), drawn from its
   class's stream into a ``_Scene``: an opacity (or lucency) layer, its mask
   and its metadata;
5. acquisition (``_acquire``, noise stream): gain and offset, background,
   film grain, quantum noise, clipping to [0, 1].

Every case draws from its own ``numpy.random.SeedSequence(seed, spawn_key=(index,
stream))`` streams: :data:`STREAM_ANATOMY`, :data:`STREAM_NOISE` and
``STREAM_CLASS0 + k`` for the class at position ``k`` of the phantom's known classes.
Each stream is read in the same order whichever classes are present, so a class's
presence and geometry do not depend on the others.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Optional

import numpy as np
from scipy import ndimage as ndi

__all__ = ["Drawn", "Findings", "FINDINGS_V1", "draw", "mask_box", "cardiothoracic_ratio", "STREAM_ANATOMY",
           "STREAM_NOISE", "STREAM_CLASS0"]

STREAM_ANATOMY = 0
STREAM_NOISE = 1
STREAM_CLASS0 = 10  # + the class's position in the phantom's known classes

Box = tuple[int, int, int, int]


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
# drawing helpers
# ------------------------------------------------------------------------------------------------
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def rng_stream(seed: int, index: int, stream: int) -> np.random.Generator:
    """Stream ``stream`` of case ``index`` of the phantom with seed ``seed``."""
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
# anatomy
# ------------------------------------------------------------------------------------------------
@dataclass
class _Scene:
    """What the findings are drawn into: the pixel grid, its canonical coordinates and the lung fields."""

    S: int                          # image side, pixels
    k: float                        # pixel-scale factor for filters defined at 256 px
    mm: float                       # nominal mm per pixel
    cf: float                       # lesion contrast factor
    g: _Geometry
    qx: np.ndarray
    qy: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    lung_soft_side: list[np.ndarray]
    lung_side: list[np.ndarray]
    place_side: list[np.ndarray]    # where lesions are placed (the lung without the largest heart)
    lung_mask: np.ndarray

    def place(self, r_px: float, side: int, rng: np.random.Generator) -> tuple[float, float, float]:
        """A centre (row, col) inside the placement lung at least ``r_px`` from its edge (shrinking r if needed)."""
        S = self.S
        dist = ndi.distance_transform_edt(self.place_side[side])
        cand = np.flatnonzero(dist.ravel() >= r_px + 1.0)
        if cand.size == 0:
            cand = np.flatnonzero(dist.ravel() >= 0.8 * dist.max())
            r_px = max(1.5, 0.9 * float(dist.max()) - 1.0)
        pick = int(cand[rng.integers(cand.size)])
        jit = rng.uniform(-0.3, 0.3, size=2)
        return pick // S + float(jit[0]), pick % S + float(jit[1]), r_px


def _anatomy(sc: _Scene, ga: np.random.Generator, heart_raw: np.ndarray,
             lung_soft: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The density of the anatomy without findings, and the lung markings (added after the findings,
    attenuated inside a pneumothorax)."""
    S, k, g, qx, qy = sc.S, sc.k, sc.g, sc.qx, sc.qy
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
    return dens, vessels


# ------------------------------------------------------------------------------------------------
# findings: each draws its layer of density, its mask and its metadata from its class's stream
# ------------------------------------------------------------------------------------------------
@dataclass
class _Finding:
    layer: np.ndarray                  # density added to the anatomy (negative: a lucency)
    mask: np.ndarray                   # bool, where the finding is (its ground truth)
    meta: dict[str, Any]               # size, side...
    fade: Optional[np.ndarray] = None  # where the lung markings fade (0..1), if anywhere


def _nodule(sc: _Scene, r: np.random.Generator, *, diam_mm: tuple[float, float] = (5.0, 10.0),
            edge_px: float = 0.25, grain: float = 0.22, grain_px: float = 0.0,
            floor: Optional[float] = None) -> _Finding:
    """A round nodule of diameter ``diam_mm[0] + diam_mm[1] * u`` mm with a grainy interior: texture
    ``1 + grain * noise`` (Gaussian-smoothed at ``max(grain_px, 0.45 k)`` pixels, clipped below at ``floor``)."""
    S, k, rows, cols = sc.S, sc.k, sc.rows, sc.cols
    side = int(r.random() < 0.5)
    diam = diam_mm[0] + diam_mm[1] * float(r.random())
    rad = max(1.5, diam / 2 / sc.mm)
    r0, c0, rad = sc.place(rad, side, r)
    d = np.hypot(rows - r0, cols - c0)
    shape = _sigmoid((rad - d) / max(edge_px, 0.35 * k))
    tex = 1.0 + grain * _smooth_noise(r, (S, S), max(grain_px, 0.45 * k))
    if floor is not None:
        tex = np.clip(tex, floor, None)
    layer = 0.20 * sc.cf * (0.9 + 0.2 * float(r.random())) * shape * tex
    return _Finding(layer, (shape > 0.5) & sc.lung_mask, {"diameter_mm": diam, "side": ("right", "left")[side]})


def _mass(sc: _Scene, r: np.random.Generator) -> _Finding:
    S, k, rows, cols = sc.S, sc.k, sc.rows, sc.cols
    side = int(r.random() < 0.5)
    diam = 30.0 + 30.0 * float(r.random())
    rad0 = diam / 2 / sc.mm
    amps = r.uniform(0.04, 0.11, size=4)
    phases = r.uniform(0, 2 * np.pi, size=4)
    rmax = rad0 * (1 + float(amps.sum()))
    r0, c0, rfit = sc.place(rmax, side, r)
    rad0 *= min(1.0, rfit / rmax)
    ang = np.arctan2(rows - r0, cols - c0)
    rad_t = rad0 * (1 + sum(a * np.cos(m * ang + ph) for a, m, ph in zip(amps, (2, 3, 4, 5), phases)))
    d = np.hypot(rows - r0, cols - c0)
    shape = _sigmoid((rad_t - d) / max(0.4, 0.9 * k))
    coarse = _smooth_noise(r, (S, S), max(1.0, 0.22 * rad0))
    necrosis = _sigmoid((_smooth_noise(r, (S, S), max(1.0, 0.3 * rad0)) - 1.0) / 0.25)
    tex = np.clip(1.0 + 0.40 * coarse - 0.45 * necrosis, 0.15, None)
    layer = 0.19 * sc.cf * (0.9 + 0.2 * float(r.random())) * shape * tex
    return _Finding(layer, (shape > 0.5) & sc.lung_mask,
                    {"diameter_mm": diam * min(1.0, rfit / rmax), "side": ("right", "left")[side]})


def _infiltration(sc: _Scene, r: np.random.Generator) -> _Finding:
    S, k, rows, cols = sc.S, sc.k, sc.rows, sc.cols
    side = int(r.random() < 0.5)
    rad = (15.0 + 15.0 * float(r.random())) / sc.mm
    r0, c0, _ = sc.place(0.35 * rad, side, r)
    ell = (((rows - r0) / (rad * r.uniform(0.8, 1.2))) ** 2 + ((cols - c0) / (rad * r.uniform(0.8, 1.2))) ** 2)
    window = _sigmoid((1.0 - ell) / 0.25)
    patch = _sigmoid((_smooth_noise(r, (S, S), max(1.0, rad / 4)) + 0.3) / 0.5)
    env = ndi.gaussian_filter(window * patch, max(0.6, 1.5 * k))
    env *= sc.lung_soft_side[side]
    env /= max(float(env.max()), 1e-9)
    band = _norm(ndi.gaussian_filter(r.standard_normal((S, S)), 0.9 * k)
                 - ndi.gaussian_filter(r.standard_normal((S, S)), 2.2 * k))
    reticular = np.exp(-(band / 0.45) ** 2)  # a net of bright lines along the zero crossings
    mottled = _smooth_noise(r, (S, S), 1.2 * k)
    tex = np.clip(0.35 + 0.75 * reticular + 0.25 * mottled, 0.0, None)
    layer = 0.15 * sc.cf * (0.9 + 0.2 * float(r.random())) * env * tex
    return _Finding(layer, (env > 0.4) & sc.lung_mask,
                    {"diameter_mm": 2 * rad * sc.mm, "side": ("right", "left")[side]})


def _effusion(sc: _Scene, r: np.random.Generator, *, hide_markings: bool = False) -> _Finding:
    """A meniscus of fluid at one costophrenic angle; ``hide_markings``: the lung markings behind it fade in
    proportion to the fluid's contrast factor (``min(1, cf)``: a faint layer hides them a little)."""
    S, g, qx, qy = sc.S, sc.g, sc.qx, sc.qy
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
    layer = 0.30 * sc.cf * (0.9 + 0.2 * float(r.random())) * fluid * sc.lung_soft_side[side] * (0.9 + 0.1 * depth)
    return _Finding(layer, (fluid > 0.5) & sc.lung_side[side], {"side": ("right", "left")[side], "height": height},
                    fade=fluid * sc.lung_soft_side[side] * min(1.0, sc.cf) if hide_markings else None)


def _pneumothorax(sc: _Scene, r: np.random.Generator, *, collapse: tuple[float, float] = (0.72, 0.14),
                  line_px: float = 0.4) -> _Finding:
    """The mask is the gap between the chest wall and the collapsed lung, where the lung markings fade; the
    lung is shrunk to ``collapse[0] + collapse[1] * u`` of its size; the pleural line is blurred by
    ``max(line_px, 0.5 k)`` pixels."""
    k, rows, cols = sc.k, sc.rows, sc.cols
    side = int(r.random() < 0.5)
    f = collapse[0] + collapse[1] * float(r.random())
    b = mask_box(sc.lung_side[side])
    assert b is not None
    medial_col = b[0] + b[2] - 1 if side == 0 else b[0]
    ar, ac = b[1] + 0.72 * b[3], float(medial_col)
    # the collapsed lung: the lung field shrunk by f towards a medial point low in the hilum region
    src_r = ar + (rows - ar) / f
    src_c = ac + (cols - ac) / f
    collapsed_soft = ndi.map_coordinates(sc.lung_soft_side[side], [src_r, src_c], order=1, mode="constant")
    collapsed = collapsed_soft > 0.5
    upper = _sigmoid((ar - rows) / max(1.0, 2.0 * k))
    gap_soft = np.clip(sc.lung_soft_side[side] - collapsed_soft, 0.0, 1.0) * upper
    gap = (gap_soft > 0.5) & sc.lung_side[side]
    edge = collapsed & ~ndi.binary_erosion(collapsed)
    line = ndi.gaussian_filter(edge.astype(np.float64), max(line_px, 0.5 * k))
    line /= max(float(line.max()), 1e-9)
    line *= ndi.binary_dilation(gap, iterations=2) * upper
    layer = sc.cf * (0.13 * line - 0.09 * gap_soft)
    return _Finding(layer, gap, {"side": ("right", "left")[side], "collapse": f}, fade=gap_soft)


#: The findings drawn as layers, in the order their layers are added (Cardiomegaly changes the heart instead).
_FINDINGS: dict[str, Callable[[_Scene, np.random.Generator], _Finding]] = {
    "Nodule": _nodule, "Mass": _mass, "Infiltration": _infiltration, "Effusion": _effusion,
    "Pneumothorax": _pneumothorax,
}


def _enlarged_ctr_v1(ctr_normal: float, u: float, difficulty: float, strength: float) -> float:
    """Version 1's Cardiomegaly: a cardiothoracic ratio of 0.595-0.68 (x (1 - 0.55 difficulty) above 0.545)."""
    return 0.545 + (0.05 + 0.085 * u) * (1.0 - 0.55 * difficulty)


@dataclass(frozen=True)
class Findings:
    """How a phantom version draws its findings: the layer-drawing function of each class (in the order the
    layers are added), the enlarged heart's cardiothoracic ratio ``enlarged_ctr(ctr_normal, u, difficulty,
    strength)``, and each class's strength (its contrast factor is multiplied by it; None: 1 for all)."""

    layers: Mapping[str, Callable[[_Scene, np.random.Generator], _Finding]]
    enlarged_ctr: Callable[[float, float, float, float], float]
    strength: Optional[Mapping[str, float]] = None


#: Version 1, as it has always been drawn.
FINDINGS_V1 = Findings(layers=_FINDINGS, enlarged_ctr=_enlarged_ctr_v1)


# ------------------------------------------------------------------------------------------------
# acquisition and the whole case
# ------------------------------------------------------------------------------------------------
def _acquire(sc: _Scene, dens: np.ndarray, gn: np.random.Generator, difficulty: float) -> np.ndarray:
    """Contrast, background, noise: the float32 image in [0, 1]."""
    S, k, g, rows, cols = sc.S, sc.k, sc.g, sc.rows, sc.cols
    img = g.gain * dens + g.offset
    low = _smooth_noise(gn, (S, S), S / 8.0)
    ang = gn.uniform(0, 2 * np.pi)
    ramp = (np.cos(ang) * (cols / S - 0.5) + np.sin(ang) * (rows / S - 0.5))
    img += (0.012 + 0.04 * difficulty) * low + (0.02 + 0.06 * difficulty) * ramp
    grain = _smooth_noise(gn, (S, S), 0.6 * k)
    img += (0.004 + 0.014 * difficulty) * grain
    img += (0.006 + 0.03 * difficulty) * (0.6 + 0.8 * np.clip(img, 0, 1)) * gn.standard_normal((S, S))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


@dataclass
class Drawn:
    """A drawn case before its ground truth is checked: the image, which classes were drawn present, the
    mask of each present class, the lung and heart masks, and the metadata."""

    image: np.ndarray
    present: dict[str, bool]
    masks: dict[str, np.ndarray]
    lung_mask: np.ndarray
    heart_mask: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def draw(index: int, size: int, seed: int, difficulty: float, names: tuple[str, ...], class_ids: tuple[int, ...],
         prev: tuple[float, ...], suppress: set[str], force: set[str], fov_mm: float,
         findings: Findings = FINDINGS_V1) -> Drawn:
    """draw(index, size, seed, difficulty, names, class_ids, prev, suppress, force, fov_mm, findings=FINDINGS_V1)

    Draw case ``index`` (settings already checked). ``class_ids``: each class's position in the known
    classes (its stream); ``fov_mm``: the field of view (sets the nominal pixel size); ``findings``: how the
    phantom's version draws its findings (:data:`FINDINGS_V1`, or version 2's in
    :mod:`chexradi.data.phantom_v2`)."""
    S = size
    k = S / 256.0  # pixel-scale factor for filters defined at 256 px
    mm = fov_mm / S  # nominal mm per pixel
    cf = 1.0 - 0.65 * difficulty  # lesion contrast factor

    # labels: first draw of each class's own stream
    class_rng: dict[str, np.random.Generator] = {}
    present: dict[str, bool] = {}
    for c, cid, p in zip(names, class_ids, prev):
        r = rng_stream(seed, index, STREAM_CLASS0 + cid)
        drawn = bool(r.random() < p)
        class_rng[c] = r
        present[c] = (drawn or c in force) and c not in suppress

    ga = rng_stream(seed, index, STREAM_ANATOMY)
    g = _draw_geometry(ga, difficulty)
    qx, qy = _canonical_grid(S, g)
    rows, cols = np.mgrid[0:S, 0:S]

    ctr_target = g.ctr_normal
    meta: dict[str, Any] = {"nominal_pixel_mm": mm, "difficulty": difficulty,
                            "transform": {"scale": g.scale, "shift": g.shift, "angle_deg": g.angle_deg,
                                          "gain": g.gain, "offset": g.offset}}
    strength = findings.strength or {}
    if present.get("Cardiomegaly"):
        r = class_rng["Cardiomegaly"]
        ctr_target = findings.enlarged_ctr(g.ctr_normal, float(r.random()), difficulty,
                                           float(strength.get("Cardiomegaly", 1.0)))

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
    sc = _Scene(S=S, k=k, mm=mm, cf=cf, g=g, qx=qx, qy=qy, rows=rows, cols=cols, lung_soft_side=lung_soft_side,
                lung_side=lung_side, place_side=place_side, lung_mask=lung_mask)

    dens, vessels = _anatomy(sc, ga, heart_raw, lung_soft)

    masks: dict[str, np.ndarray] = {}
    layers = np.zeros((S, S))
    gap_soft = np.zeros((S, S))
    for c, draw_finding in findings.layers.items():
        if present.get(c):
            f = draw_finding(sc if c not in strength else replace(sc, cf=cf * float(strength[c])), class_rng[c])
            layers += f.layer
            masks[c], meta[c] = f.mask, f.meta
            if f.fade is not None:
                gap_soft = np.maximum(gap_soft, f.fade)
    if present.get("Cardiomegaly"):
        masks["Cardiomegaly"] = heart_mask.copy()
    dens += vessels * (1.0 - gap_soft) + layers
    meta["ctr_target"] = ctr_target
    meta["ctr"] = cardiothoracic_ratio(heart_mask, lung_mask)

    image = _acquire(sc, dens, rng_stream(seed, index, STREAM_NOISE), difficulty)
    return Drawn(image=image, present=present, masks=masks, lung_mask=lung_mask, heart_mask=heart_mask, meta=meta)
