"""Clinical efficacy of generated reports: labels of the generated report against those of the reference.

The report-generation papers' "clinical efficacy" (CE) runs a report labeler on the reference
and on the generated report of every study and scores the generated labels as predictions of
the reference labels: precision, recall and F1 per label, micro-averaged over labels (from the
summed counts) and macro-averaged (the mean of the labels' scores).

Label values follow the CheXpert convention: 1 positive, 0 negative, -1 uncertain, NaN (or
``None``) not mentioned. A value counts as *positive* when it is 1, and also when it is -1 with
``uncertain="positive"``; everything else (0, NaN, and -1 by default) is negative. Per label,
over the studies:

- ``TP`` = reference positive and generated positive, ``FP`` = generated positive and reference
  negative, ``FN`` = reference positive and generated negative; ``support`` = reference positives
  (``TP + FN``);
- ``precision = TP / (TP + FP)``, NaN when nothing was generated positive;
- ``recall = TP / (TP + FN)``, NaN when no reference is positive;
- ``F1 = 2 TP / (2 TP + FP + FN)`` (= ``2 P R / (P + R)`` where both are defined): 0 when a side has
  positives and none match (a report that names nothing scores 0, not "undefined"); NaN only when
  neither side has a positive.

Micro: the same three formulas (same NaN rules) on the counts summed over labels. Macro: the
mean over the labels where the score is defined (NaN when it is defined for none); the numbers
of labels averaged are kept (:attr:`ClinicalEfficacy.macro_labels`).

This module imports numpy only; never torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["check_uncertain", "UNCERTAIN_POLICIES", "ClinicalEfficacy", "clinical_efficacy", "positive_labels"]

UNCERTAIN_POLICIES = ("negative", "positive")
"""How an uncertain (-1) label counts — as a negative (default) or as a positive."""


def _matrix(x: Any, what: str) -> np.ndarray:
    try:
        a = np.array(x, dtype=np.float64)  # None -> NaN
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be an (N studies, K labels) array of 1 / 0 / -1 / NaN: {exc}") from None
    if a.ndim != 2:
        raise ValueError(f"{what} must be 2-D (N studies, K labels), got shape {a.shape}")
    bad = np.unique(a[~np.isnan(a) & ~np.isin(a, (1.0, 0.0, -1.0))])
    if bad.size:
        raise ValueError(f"{what} holds values other than 1 / 0 / -1 / NaN: {bad[:5].tolist()}; give label values "
                         f"in the CheXpert convention (1 positive, 0 negative, -1 uncertain, NaN not mentioned)")
    return a


def positive_labels(values: Any, *, uncertain: str = "negative") -> np.ndarray:
    """Label values -> booleans: 1 is positive, -1 only with ``uncertain="positive"``; 0 and NaN never.

    Raises
    ------
    ValueError
        Not a 2-D array of 1 / 0 / -1 / NaN, or an unknown ``uncertain``.
    """
    check_uncertain(uncertain)
    a = _matrix(values, "values")
    return (a == 1.0) | ((a == -1.0) if uncertain == "positive" else False)


def check_uncertain(uncertain: Any) -> None:
    """Refuse an ``uncertain`` policy that is not one of :data:`UNCERTAIN_POLICIES`, naming them."""
    if uncertain not in UNCERTAIN_POLICIES:
        raise ValueError(f"uncertain must be one of {', '.join(UNCERTAIN_POLICIES)} (how a -1 label counts), "
                         f"got {uncertain!r}")


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, fp, fn = (np.asarray(v, np.float64) for v in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        r = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        d = 2 * tp + fp + fn
        f = np.where(d > 0, 2 * tp / np.where(d > 0, d, 1.0), np.nan)
    return p, r, f


def _num(x: Any) -> Optional[float]:
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class ClinicalEfficacy:
    """Precision, recall and F1 of generated labels against reference labels, per label, micro and macro.

    Attributes
    ----------
    names : tuple of str
        The labels, in column order.
    tp, fp, fn, support : numpy.ndarray
        Counts per label (``support`` = reference positives).
    precision, recall, f1 : numpy.ndarray
        Per label; NaN where undefined (see the module docstring).
    micro, macro : dict
        ``{"precision", "recall", "f1"}``: micro from the summed counts, macro the mean over the
        labels where each is defined.
    macro_labels : dict
        How many labels each macro score averages.
    n : int
        Studies.
    uncertain : str
        How -1 was counted.
    """

    names: tuple[str, ...]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    support: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    micro: dict[str, float]
    macro: dict[str, float]
    macro_labels: dict[str, int]
    n: int
    uncertain: str

    def table(self) -> list[dict[str, Any]]:
        """One row per label (``label, tp, fp, fn, support, precision, recall, f1``; NaN kept), then
        ``micro`` and ``macro`` rows."""
        rows: list[dict[str, Any]] = []
        for k, name in enumerate(self.names):
            rows.append({"label": name, "tp": int(self.tp[k]), "fp": int(self.fp[k]), "fn": int(self.fn[k]),
                         "support": int(self.support[k]), "precision": float(self.precision[k]),
                         "recall": float(self.recall[k]), "f1": float(self.f1[k])})
        rows.append({"label": "micro", "tp": int(self.tp.sum()), "fp": int(self.fp.sum()), "fn": int(self.fn.sum()),
                     "support": int(self.support.sum()), **self.micro})
        rows.append({"label": "macro", "tp": None, "fp": None, "fn": None, "support": None, **self.macro})
        return rows

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (NaN -> ``None``): the table, micro, macro, counts and the uncertain policy."""
        rows = [{k: (_num(v) if isinstance(v, float) else v) for k, v in r.items()} for r in self.table()]
        return {"n": self.n, "uncertain": self.uncertain, "labels": rows[:-2],
                "micro": {k: _num(v) for k, v in self.micro.items()},
                "macro": {k: _num(v) for k, v in self.macro.items()}, "macro_labels": dict(self.macro_labels)}


def clinical_efficacy(reference: Any, generated: Any, names: Sequence[str], *,
                      uncertain: str = "negative") -> ClinicalEfficacy:
    """Score generated reports' labels against their references' labels.

    Parameters
    ----------
    reference, generated:
        (N studies, K labels) arrays (or nested lists; ``None`` is NaN) of 1 / 0 / -1 / NaN, the
        same shape, rows in the same study order.
    names:
        The K label names.
    uncertain:
        ``"negative"`` (default): -1 counts as negative; ``"positive"``: as positive.

    Returns
    -------
    ClinicalEfficacy

    Raises
    ------
    ValueError
        Not 2-D, other values than 1 / 0 / -1 / NaN, shapes that differ, ``names`` of another
        length than K (or repeated), no study, an unknown ``uncertain``.
    """
    check_uncertain(uncertain)
    ref = _matrix(reference, "reference")
    gen = _matrix(generated, "generated")
    if ref.shape != gen.shape:
        raise ValueError(f"reference labels have shape {ref.shape} but generated labels {gen.shape}: give one row "
                         f"per study and one column per label in both, in the same order")
    if ref.shape[0] == 0:
        raise ValueError("no studies: the label matrices have no rows")
    names = tuple(str(x) for x in ([names] if isinstance(names, str) else names))
    if len(names) != ref.shape[1]:
        raise ValueError(f"{len(names)} label name(s) for {ref.shape[1]} column(s): give one name per column")
    if len(set(names)) != len(names):
        raise ValueError(f"label names repeat: {sorted({x for x in names if names.count(x) > 1})}")
    r = positive_labels(ref, uncertain=uncertain)
    g = positive_labels(gen, uncertain=uncertain)
    tp = (r & g).sum(axis=0)
    fp = (~r & g).sum(axis=0)
    fn = (r & ~g).sum(axis=0)
    p, rc, f = _prf(tp, fp, fn)
    mp, mr, mf = (float(v) for v in _prf(tp.sum(), fp.sum(), fn.sum()))

    def mean(v: np.ndarray) -> float:
        ok = v[~np.isnan(v)]
        return float(ok.mean()) if ok.size else float("nan")

    return ClinicalEfficacy(names=names, tp=tp, fp=fp, fn=fn, support=tp + fn, precision=p, recall=rc, f1=f,
                            micro={"precision": mp, "recall": mr, "f1": mf},
                            macro={"precision": mean(p), "recall": mean(rc), "f1": mean(f)},
                            macro_labels={"precision": int((~np.isnan(p)).sum()),
                                          "recall": int((~np.isnan(rc)).sum()), "f1": int((~np.isnan(f)).sum())},
                            n=int(ref.shape[0]), uncertain=uncertain)
