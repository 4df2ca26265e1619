"""IU X-ray's human MeSH indexing as reference labels, and precision / recall / F1 against it.

Every IU X-ray (OpenI) report carries ``MeSH/major`` terms assigned by human indexers, as
``Head/qualifier/qualifier`` (``Pleural Effusion/bilateral/small``, ``Cardiomegaly/mild``,
``Thickening/pleura/apex``). :data:`IU_MESH_MAP` maps the head term (lower-case, white space
collapsed) and, where the head is generic, its qualifiers to the 14 ChestX-ray14 labels
(the strict mapping: only terms that name the finding itself). ``normal`` maps to Normal (and
to No Finding, the column earlier versions scored against it).

===================  ================================================================
label                MeSH/major terms
===================  ================================================================
Atelectasis          Pulmonary Atelectasis
Cardiomegaly         Cardiomegaly; Cardiac Shadow/enlarged
Effusion             Pleural Effusion; Hydropneumothorax
Infiltration         Infiltrate
Mass                 Mass (not Mass/breast)
Nodule               Nodule
Pneumonia            Pneumonia
Pneumothorax         Pneumothorax; Hydropneumothorax; Hemopneumothorax
Consolidation        Consolidation
Edema                Pulmonary Edema
Emphysema            Emphysema; Pulmonary Emphysema; Bullous Emphysema
Fibrosis             Pulmonary Fibrosis; Fibrosis
Pleural_Thickening   Thickening/pleura
Hernia               Hernia, Hiatal; Hernia, Diaphragmatic
Normal, No Finding   normal
===================  ================================================================

``normal`` is what the indexers recorded for a report with no abnormality of any kind, so it
is the reference of the labeler's ``Normal``; it is also given as ``No Finding`` (the column
earlier versions scored against it, which means something narrower).

Not mapped (they name something else, or something broader): Opacity, Airspace Disease,
Granuloma, Calcified Granuloma, Cicatrix, Pulmonary Congestion, Costophrenic Angle/blunted,
Volume Loss, Pulmonary Disease, Chronic Obstructive, Lung/hypoinflation, devices, bones.

The reference says what the indexer found, not what the report negated or doubted, so a
labeler's -1 counts as "not positive" (and, as a second reading, as positive). Reports whose
MeSH is ``No Indexing`` or ``Technical Quality of Image Unsatisfactory`` without a mapped
label have no reference and are left out of the scores.

:func:`iu_half` splits the reports into two fixed halves by a hash of the report id: the
vocabulary of abnormal findings (``labelsets/findings.yaml``) and the rules written for Normal
were written looking at half ``"A"`` only, and half ``"B"`` is reported separately as held out.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

__all__ = ["IU_MESH_MAP", "mesh_reference", "score", "Score", "WANG2017_EIGHT", "UNINDEXED", "iu_half", "HALVES"]

#: label -> list of (head term, required qualifier or None, excluded qualifier or None)
IU_MESH_MAP: dict[str, list[tuple[str, Optional[str], Optional[str]]]] = {
    "Atelectasis": [("pulmonary atelectasis", None, None)],
    "Cardiomegaly": [("cardiomegaly", None, None), ("cardiac shadow", "enlarged", None)],
    "Effusion": [("pleural effusion", None, None), ("hydropneumothorax", None, None)],
    "Infiltration": [("infiltrate", None, None)],
    "Mass": [("mass", None, "breast")],
    "Nodule": [("nodule", None, None)],
    "Pneumonia": [("pneumonia", None, None)],
    "Pneumothorax": [("pneumothorax", None, None), ("hydropneumothorax", None, None),
                     ("hemopneumothorax", None, None)],
    "Consolidation": [("consolidation", None, None)],
    "Edema": [("pulmonary edema", None, None)],
    "Emphysema": [("emphysema", None, None), ("pulmonary emphysema", None, None), ("bullous emphysema", None, None)],
    "Fibrosis": [("pulmonary fibrosis", None, None), ("fibrosis", None, None)],
    "Pleural_Thickening": [("thickening", "pleura", None)],
    "Hernia": [("hernia, hiatal", None, None), ("hernia, diaphragmatic", None, None)],
}
#: MeSH heads that mean "not indexed" rather than "nothing found".
UNINDEXED = ("no indexing", "technical quality of image unsatisfactory")
#: The eight ChestX-ray8 labels scored by Wang et al. (CVPR 2017), Table 2 (with Normal).
WANG2017_EIGHT = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                  "Pneumothorax")


#: The two halves of the IU reports — "A" (the rules were written on it) and "B" (held out).
HALVES = ("A", "B")


def iu_half(report_id: str) -> str:
    """``"A"`` or ``"B"``: the half of the IU X-ray reports a report id is in (SHA-256 of the id, even -> A)."""
    return HALVES[int(hashlib.sha256(str(report_id).encode("utf-8")).hexdigest(), 16) % 2]


def _split(term: str) -> tuple[str, list[str]]:
    parts = [" ".join(p.lower().split()) for p in term.split("/")]
    return parts[0], parts[1:]


def mesh_reference(mesh: Iterable[str], labels: Sequence[str] = tuple(IU_MESH_MAP)) -> Optional[dict[str, int]]:
    """The reference 0/1 per label (and ``"Normal"``, ``"No Finding"``) from a report's MeSH/major terms.

    Returns ``None`` when the report has no reference: no terms, or only "No Indexing" /
    "Technical Quality of Image Unsatisfactory" without a mapped label.
    """
    terms = [_split(t) for t in mesh if t and t.strip()]
    out = {lab: 0 for lab in labels}
    for lab in labels:
        for head, need, avoid in IU_MESH_MAP.get(lab, []):
            for h, quals in terms:
                if h != head:
                    continue
                if need is not None and not any(need in q for q in quals):
                    continue
                if avoid is not None and any(avoid in q for q in quals):
                    continue
                out[lab] = 1
    heads = {h for h, _ in terms}
    if not terms or (not any(out.values()) and heads and heads <= set(UNINDEXED)):
        return None
    out["Normal"] = int("normal" in heads)
    out["No Finding"] = out["Normal"]
    return out


@dataclass(frozen=True)
class Score:
    """Counts and rates for one label (or the micro average)."""

    label: str
    tp: int
    fp: int
    fn: int
    support: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "tp": self.tp, "fp": self.fp, "fn": self.fn, "support": self.support,
                "precision": self.precision, "recall": self.recall, "f1": self.f1}


def score(pred: Mapping[str, Mapping[str, Optional[int]]], gold: Mapping[str, Mapping[str, int]],
          labels: Sequence[str], *, uncertain_positive: bool = False) -> list[Score]:
    """Per-label scores over the reports in ``gold`` (a missing prediction counts as all negative), then "micro".

    ``pred[report][label]`` is 1/0/-1/None; -1 counts as positive only with ``uncertain_positive``.
    """
    rows = []
    tot = [0, 0, 0, 0]
    for lab in labels:
        tp = fp = fn = sup = 0
        for rid, g in gold.items():
            v = pred.get(rid, {}).get(lab)
            p = v == 1 or (uncertain_positive and v == -1)
            y = g.get(lab, 0) == 1
            sup += y
            tp += p and y
            fp += p and not y
            fn += y and not p
        rows.append(Score(lab, tp, fp, fn, sup))
        tot = [tot[0] + tp, tot[1] + fp, tot[2] + fn, tot[3] + sup]
    rows.append(Score("micro", *tot))
    return rows
