"""What phantom version 2 draws differently from version 1: findings a 128-px image shows, each with a
texture signature, at strengths calibrated on the image-only arm.

Version 1 (:data:`chexradi.data.phantom_render.FINDINGS_V1`) stays as it was, drawn the same to
the bit. Version 2 keeps its anatomy, acquisition, random streams and ground-truth conventions
and changes the findings:

===============  ==========================================================================
Nodule           10-30 mm (version 1: 5-15 mm, 2-6 pixels at 96 px: invisible), round, with a
                 stippled interior (grain of at least 0.8 pixel, amplitude 0.45).
Mass             as version 1 (30-60 mm, lobulated, coarse, necrotic patches).
Infiltration     as version 1 (patchy, reticular and mottled), its net drawn at a scale of at
                 least 0.8 pixel so that it survives at 128 px.
Effusion         as version 1, and the fluid hides the lung markings behind it (in proportion
                 to its contrast): smoother than lung.
Pneumothorax     a smaller collapse (the lung shrunk to 80-92 % of its size; version 1:
                 72-86 %), no lung markings in the rim.
Cardiomegaly     the cardiothoracic ratio raised above the case's own normal ratio (0.41-0.47)
                 by ``strength x (0.05 + 0.06 u) x (1 - 0.55 difficulty)``, so that enlarged and
                 normal hearts overlap as in real radiographs (version 1: 0.595-0.68 at
                 difficulty 0, always above every normal heart).
===============  ==========================================================================

Each finding's contrast (its layer of density; for Cardiomegaly its enlargement) is
multiplied by :data:`STRENGTH`, one constant per class. The constants were calibrated with
the image-only arm alone, before any guided run: at the loop's default settings (``phantom``
spec: 128 px, difficulty 0.5; ``resnet18_ta`` at output stride 16; round 0) every class's test
AUC, averaged over three training seeds, lies in [0.65, 0.92] -- no class at chance, none
saturated. The calibration runs and every value tried are in ``docs/phantom.md``; the constants
are not changed after a guided result has been seen. ``make_case(..., strength={...})`` draws
the phantom at other strengths (a harder or an easier test bed); the strengths are recorded in
the phantom's settings.

Texture signatures, what radiomics inside a correct mask can see (the "radiomics ceiling" in
``docs/phantom.md`` measures it): Nodule brighter and granular, Mass coarse and
heterogeneous, Infiltration a fine bright net, Effusion denser and smoother than lung, the
Pneumothorax rim darker and without markings, Cardiomegaly a larger heart (shape).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np

from .phantom_render import Findings, _effusion, _Finding, _infiltration, _mass, _nodule, _pneumothorax, _Scene

__all__ = ["STRENGTH", "FINDINGS_V2", "enlarged_ctr", "findings"]

#: Per-class contrast multipliers of version 2 (calibrated on the image-only arm; see the module docstring).
STRENGTH: dict[str, float] = {
    "Nodule": 1.6,
    "Mass": 0.65,
    "Effusion": 0.2,
    "Cardiomegaly": 0.55,
    "Pneumothorax": 0.5,
    "Infiltration": 3.0,
}

#: Smallest texture scale (Gaussian sigma, pixels): a grain finer than this is lost to the pixel grid.
MIN_GRAIN_PX = 0.8


def _infiltration_v2(sc: _Scene, r: np.random.Generator) -> _Finding:
    """Version 1's infiltration with its filters at a scale the pixel grid keeps (``k >= MIN_GRAIN_PX / 0.9``)."""
    return _infiltration(dataclasses.replace(sc, k=max(sc.k, MIN_GRAIN_PX / 0.9)), r)


def enlarged_ctr(ctr_normal: float, u: float, difficulty: float, strength: float) -> float:
    """The cardiothoracic ratio of an enlarged heart: the case's normal ratio raised by
    ``strength * (0.05 + 0.06 u) * (1 - 0.55 difficulty)`` (``u`` uniform in [0, 1))."""
    return ctr_normal + strength * (0.05 + 0.06 * u) * (1.0 - 0.55 * difficulty)


_LAYERS: dict[str, Callable[[_Scene, np.random.Generator], _Finding]] = {
    "Nodule": functools.partial(_nodule, diam_mm=(10.0, 20.0), edge_px=0.3, grain=0.45, grain_px=MIN_GRAIN_PX,
                                floor=0.1),
    "Mass": _mass,
    "Infiltration": _infiltration_v2,
    "Effusion": functools.partial(_effusion, hide_markings=True),
    "Pneumothorax": functools.partial(_pneumothorax, collapse=(0.80, 0.12), line_px=0.5),
}


def findings(strength: "dict[str, float] | None" = None) -> Findings:
    """Version 2's findings at :data:`STRENGTH`, with the classes in ``strength`` at the values given."""
    return Findings(layers=_LAYERS, enlarged_ctr=enlarged_ctr, strength={**STRENGTH, **(strength or {})})


#: Version 2 at its calibrated strengths.
FINDINGS_V2 = findings()
