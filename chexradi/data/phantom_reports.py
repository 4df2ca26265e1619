"""Radiology reports for the phantom, written from each image's own ground truth.

Every phantom case gets a short report in the usual two sections -- FINDINGS and
IMPRESSION -- so that methods that learn from the report (a text teacher, report generation)
and the report labeler can be exercised on data where the truth is known exactly:

- each **present** finding is described with its side (the patient's), its zone (upper, mid,
  lower: where the lesion's centre lies in the lung field's height), its size (millimetres or
  centimetres for a nodule or a mass; small / moderate / large for an effusion or a
  pneumothorax, from the share of the lung it takes) and a severity word for an enlarged heart
  (mild / moderate / marked, from the cardiothoracic ratio);
- some present findings (``HEDGE_RATE``, 15 %) are **hedged** ("possible", "questionable",
  "cannot exclude", "may represent"), as radiologists do with equivocal findings: the
  labeler reads those as uncertain (-1);
- each **absent** finding is, with probability ``NEGATE_RATE`` (70 %), stated as a negation or
  a normal statement ("No pneumothorax.", "Heart size is normal.", "The costophrenic angles are
  sharp."); the rest go unmentioned, as in real reports; absent findings are sometimes
  coordinated into one sentence ("No pneumothorax or pleural effusion.");
- wording is drawn from a small grammar (several templates per statement, sentence order
  shuffled, normal filler sentences about the mediastinum and bones), so no two reports need
  read alike;
- the impression restates the positive findings, or says there is no acute abnormality.

Reports are deterministic: case ``i`` of a phantom with seed ``s`` draws from its own stream
``SeedSequence(s, spawn_key=(i, STREAM_REPORT))``, separate from the drawing's streams, so
adding reports changed no image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .phantom_render import mask_box, rng_stream

__all__ = ["PhantomReport", "write_report", "STREAM_REPORT", "HEDGE_RATE", "NEGATE_RATE", "report_text"]

#: The random stream of a case's report (the drawing uses 0, 1 and 10 + class).
STREAM_REPORT = 2
#: Share of present findings written with a hedge ("possible ...").
HEDGE_RATE = 0.15
#: Share of absent findings stated as a negation or a normal statement (the rest are not mentioned).
NEGATE_RATE = 0.7


@dataclass
class PhantomReport:
    """A phantom case's report.

    Attributes
    ----------
    findings, impression : str
        The two sections' text.
    hedged : list of str
        Present classes written with a hedge (the labeler's -1).
    negated : list of str
        Absent classes stated as absent (the labeler's 0); absent classes not listed are not
        mentioned (the labeler's blank).
    """

    findings: str
    impression: str
    hedged: list[str] = field(default_factory=list)
    negated: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The whole report — ``FINDINGS: ... IMPRESSION: ...``."""
        return report_text(self.findings, self.impression)

    @property
    def sections(self) -> dict[str, str]:
        """``{"findings": ..., "impression": ...}``, as :class:`chexradi.data.reports_join.ReportText` has them."""
        return {"findings": self.findings, "impression": self.impression}


def report_text(findings: str, impression: str) -> str:
    """The report as one text with its section headers."""
    return f"FINDINGS: {findings}\nIMPRESSION: {impression}"


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _zone(mask: np.ndarray, lung: np.ndarray) -> str:
    rows = np.flatnonzero(mask.any(axis=1))
    box = mask_box(lung)
    if rows.size == 0 or box is None:
        return "mid"
    centre = (rows[0] + rows[-1]) / 2.0
    t = (centre - box[1]) / max(1, box[3])
    return "upper" if t < 1 / 3 else "mid" if t < 2 / 3 else "lower"


def _share(mask: np.ndarray, lung: np.ndarray) -> float:
    return float(mask.sum()) / max(1.0, float(lung.sum()))


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _present(c: str, case: Any, rng: np.random.Generator) -> tuple[str, str]:
    """(findings sentence, impression phrase) for a present finding."""
    meta = case.meta.get(c, {})
    side = meta.get("side", "right")
    mask = case.masks[c]
    zone = _zone(mask, case.lung_mask)
    if c == "Nodule":
        d = float(meta.get("diameter_mm", 15.0))
        size = "small " if d < 15 else "large " if d >= 24 else ""
        s = _pick(rng, [f"There is a {size}{d:.0f} mm nodule in the {side} {zone} zone.",
                        f"A {size}nodule is seen in the {side} {zone} lung, measuring {d:.0f} mm.",
                        f"{_cap(side)} {zone} zone pulmonary nodule measuring {d / 10:.1f} cm.",
                        f"Well-circumscribed {size}nodule in the {side} {zone} lung."])
        return s, f"{_cap(size)}{side} {zone} zone nodule"
    if c == "Mass":
        d = float(meta.get("diameter_mm", 40.0))
        s = _pick(rng, [f"There is a {d / 10:.1f} cm mass in the {side} {zone} zone.",
                        f"A lobulated mass is present in the {side} {zone} lung, measuring approximately "
                        f"{d / 10:.1f} cm.",
                        f"{_cap(side)} {zone} zone mass measuring {d / 10:.1f} cm, heterogeneous in density.",
                        f"Large {side} {zone} zone mass." if d >= 45 else f"Mass in the {side} {zone} lung."])
        return s, f"{_cap(side)} {zone} zone mass"
    if c == "Infiltration":
        s = _pick(rng, [f"Patchy infiltrate in the {side} {zone} zone.",
                        f"There is a reticular infiltrate in the {side} {zone} lung.",
                        f"Ill-defined {side} {zone} zone infiltration.",
                        f"Patchy reticular opacities in the {side} {zone} zone, consistent with infiltrate."])
        return s, f"{_cap(side)} {zone} zone infiltrate"
    if c == "Effusion":
        share = _share(mask, case.lung_mask)
        size = "small" if share < 0.06 else "moderate" if share < 0.12 else "large"
        s = _pick(rng, [f"{_cap(size)} {side} pleural effusion.",
                        f"There is a {size} {side} pleural effusion with blunting of the {side} costophrenic angle.",
                        f"Blunting of the {side} costophrenic angle, consistent with a {size} pleural effusion.",
                        f"A {size} {side}-sided pleural effusion is present."])
        return s, f"{_cap(size)} {side} pleural effusion"
    if c == "Pneumothorax":
        share = _share(mask, case.lung_mask)
        size = "small" if share < 0.10 else "moderate" if share < 0.16 else "large"
        s = _pick(rng, [f"{_cap(size)} {side} apical pneumothorax.",
                        f"There is a {size} {side} pneumothorax with a visible visceral pleural line.",
                        f"{_cap(side)} apical pneumothorax, {size} in size.",
                        f"A {size} {side} pneumothorax is present."])
        return s, f"{_cap(size)} {side} pneumothorax"
    if c == "Cardiomegaly":
        ctr = float(case.meta.get("ctr", 0.55))
        sev = "mild" if ctr < 0.53 else "moderate" if ctr < 0.58 else "marked"
        adv = {"mild": "mildly", "moderate": "moderately", "marked": "markedly"}[sev]
        s = _pick(rng, [f"The heart is {adv} enlarged.", f"{_cap(sev)} cardiomegaly.",
                        f"The cardiac silhouette is {adv} enlarged.",
                        f"{_cap(sev)} enlargement of the cardiac silhouette."])
        return s, f"{_cap(sev)} cardiomegaly"
    raise ValueError(f"no report wording for class {c!r}")


def _hedged(c: str, case: Any, rng: np.random.Generator) -> tuple[str, str]:
    """(findings sentence, impression phrase) for a present finding written with a hedge."""
    meta = case.meta.get(c, {})
    side = meta.get("side", "right")
    zone = _zone(case.masks[c], case.lung_mask) if c in case.masks else "mid"
    if c == "Cardiomegaly":
        s = _pick(rng, ["Possible mild cardiomegaly.", "The heart may be mildly enlarged.",
                        "Borderline heart size; cannot exclude mild cardiomegaly."])
        return s, "possible mild cardiomegaly"
    thing = {"Nodule": f"nodule in the {side} {zone} zone", "Mass": f"mass in the {side} {zone} zone",
             "Infiltration": f"infiltrate in the {side} {zone} zone", "Effusion": f"small {side} pleural effusion",
             "Pneumothorax": f"small {side} apical pneumothorax"}[c]
    article = "" if c == "Infiltration" else "a "
    shadow = "lucency" if c == "Pneumothorax" else "opacity"
    s = _pick(rng, [f"Possible {thing}.", f"Cannot exclude {article}{thing}.", f"Questionable {thing}.",
                    f"Subtle {shadow} that may represent {article}{thing}."])
    return s, f"possible {thing}"


_NEGATIONS: dict[str, list[str]] = {
    "Nodule": ["No pulmonary nodules.", "No suspicious pulmonary nodule is seen."],
    "Mass": ["No focal mass.", "No pulmonary mass is identified."],
    "Infiltration": ["No focal infiltrate.", "No infiltrates."],
    "Effusion": ["No pleural effusion.", "The costophrenic angles are sharp.", "There is no pleural effusion."],
    "Pneumothorax": ["No pneumothorax.", "There is no pneumothorax."],
    "Cardiomegaly": ["Heart size is normal.", "The cardiac silhouette is within normal limits.",
                     "Normal heart size."],
}
_JOINED: dict[frozenset, list[str]] = {
    frozenset({"Nodule", "Mass"}): ["No pulmonary nodules or masses.", "No suspicious nodule or mass."],
    frozenset({"Pneumothorax", "Effusion"}): ["No pneumothorax or pleural effusion.",
                                              "No pleural effusion or pneumothorax."],
}
_FILLER = ["The mediastinal contours are unremarkable.", "The bony thorax is intact.",
           "The trachea is midline.", "The visualized osseous structures are unremarkable."]


def write_report(case: Any, *, seed: int, hedge_rate: float = HEDGE_RATE,
                 negate_rate: float = NEGATE_RATE) -> PhantomReport:
    """The report of a :class:`~chexradi.data.phantom.PhantomCase` (see the module docstring).

    Parameters
    ----------
    case:
        The case (its ``index``, ``class_names``, ``labels``, ``masks``, ``lung_mask`` and ``meta``).
    seed:
        The phantom's seed (the case's report stream is keyed by it and the case index).
    hedge_rate, negate_rate:
        Share of present findings hedged, and of absent findings stated as absent.

    Raises
    ------
    ValueError
        Rates outside [0, 1].
    """
    for name, v in (("hedge_rate", hedge_rate), ("negate_rate", negate_rate)):
        if not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {v!r}")
    rng = rng_stream(int(seed), int(case.index), STREAM_REPORT)
    present = [c for c, v in zip(case.class_names, case.labels) if v > 0]
    absent = [c for c in case.class_names if c not in present]
    sentences: list[str] = []
    impression: list[str] = []
    hedged: list[str] = []
    for c in present:  # one draw per class, in class order, whatever the others
        if rng.random() < hedge_rate:
            s, imp = _hedged(c, case, rng)
            hedged.append(c)
        else:
            s, imp = _present(c, case, rng)
        sentences.append(s)
        impression.append(imp)
    negated: list[str] = []
    stated = [c for c in absent if rng.random() < negate_rate]
    left = list(stated)
    for pair, options in _JOINED.items():
        if pair <= set(left) and rng.random() < 0.5:
            sentences.append(_pick(rng, options))
            left = [c for c in left if c not in pair]
            negated += sorted(pair)
    for c in left:
        sentences.append(_pick(rng, _NEGATIONS[c]))
        negated.append(c)
    if not present and rng.random() < 0.5:
        sentences.append("The lungs are clear.")
    order = rng.permutation(len(sentences))
    body = [sentences[i] for i in order]
    body.append(_pick(rng, _FILLER))
    if impression:
        imp_text = " ".join(f"{k + 1}. {_cap(p)}." for k, p in enumerate(impression)) if len(impression) > 1 \
            else f"{_cap(impression[0])}."
    else:
        imp_text = _pick(rng, ["No acute cardiopulmonary abnormality.", "No acute cardiopulmonary process.",
                               "No acute disease."])
    return PhantomReport(findings=" ".join(body), impression=imp_text, hedged=sorted(hedged),
                         negated=sorted(negated))

