"""AUC per class, and the AUC report.

Classification
--------------
Multi-label targets are an ``(N, K)`` array of 0 / 1, with NaN for "unknown"
(a label not read for that image); unknown entries are left out of the class
they belong to. A class whose known targets hold a single label (or none) has
no ROC curve: its AUC is NaN, not an error, so that a small validation split
does not stop a training run. :func:`auc_report` names those classes.

This module imports numpy (scikit-learn inside the functions); never torch.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["auc_per_class", "mean_auc", "auc_report", "check_scores"]


def check_scores(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        t = np.asarray(y_true, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y_true must be a numeric (N, K) array of 0, 1 or NaN: {exc}") from exc
    try:
        s = np.asarray(y_score, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y_score must be a numeric (N, K) array of scores: {exc}") from exc
    if t.ndim != 2:
        raise ValueError(f"y_true must be 2-D (N images, K classes), got shape {t.shape}; "
                         f"reshape a single class to (N, 1)")
    if s.ndim != 2:
        raise ValueError(f"y_score must be 2-D (N images, K classes), got shape {s.shape}; "
                         f"reshape a single class to (N, 1)")
    if t.shape != s.shape:
        raise ValueError(f"y_true {t.shape} and y_score {s.shape} must have the same shape "
                         f"(one score per image and class)")
    if not np.isfinite(s).all():
        bad = int(np.count_nonzero(~np.isfinite(s)))
        raise ValueError(f"y_score has {bad} NaN/inf value(s); scores must be finite "
                         f"(check the model outputs for overflow)")
    known = ~np.isnan(t)
    if not np.isin(t[known], (0.0, 1.0)).all():
        bad = np.unique(t[known][~np.isin(t[known], (0.0, 1.0))])[:5]
        raise ValueError(f"y_true must hold 0, 1 or NaN (unknown), found {bad.tolist()}; "
                         f"map uncertain labels (e.g. CheXpert's -1) to 0, 1 or NaN first")
    return t, s


def auc_per_class(y_true: Any, y_score: Any) -> np.ndarray:
    """Area under the ROC curve of every class (column), as scikit-learn computes it.

    Parameters
    ----------
    y_true:
        ``(N, K)`` targets: 0, 1, or NaN for unknown (left out of that column).
    y_score:
        ``(N, K)`` finite scores (probabilities or logits: AUC depends on order only).

    Returns
    -------
    numpy.ndarray
        ``(K,)`` float64; NaN for a class whose known targets are all one label
        (or all unknown), where the AUC is undefined.

    Raises
    ------
    ValueError
        Arrays that are not 2-D, of different shapes, non-finite scores, or targets
        other than 0, 1 and NaN.
    """
    from sklearn.metrics import roc_auc_score

    t, s = check_scores(y_true, y_score)
    out = np.full(t.shape[1], np.nan)
    for k in range(t.shape[1]):
        known = ~np.isnan(t[:, k])
        labels = t[known, k]
        if labels.size == 0 or labels.min() == labels.max():
            continue
        out[k] = roc_auc_score(labels, s[known, k])
    return out


def mean_auc(y_true: Any, y_score: Any) -> float:
    """Mean of :func:`auc_per_class` over the classes where it is defined (NaN when none is).

    Raises
    ------
    ValueError
        As :func:`auc_per_class`.
    """
    aucs = auc_per_class(y_true, y_score)
    defined = aucs[~np.isnan(aucs)]
    return float(defined.mean()) if defined.size else float("nan")


def auc_report(y_true: Any, y_score: Any, class_names: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """AUC of every class by name, their mean, and the classes where the AUC is undefined.

    A class has an AUC only when its known (non-NaN) targets hold both labels; the
    others get NaN and are listed -- by name -- under ``"no_positives"`` and / or
    ``"no_negatives"`` instead of raising, so that a report on a small split says *why*
    a class is missing from the mean. Values are those of :func:`auc_per_class` and
    :func:`mean_auc` (unchanged).

    Parameters
    ----------
    y_true, y_score:
        As :func:`auc_per_class`: ``(N, K)`` targets (0, 1, NaN = unknown) and finite scores.
    class_names:
        ``K`` distinct names, in column order; default ``"class_0"``, ``"class_1"``, ...

    Returns
    -------
    dict
        ``"auc"``: ``{name: AUC or NaN}`` in column order; ``"mean"``: mean over the defined
        AUCs (NaN when none is); ``"n_defined"``: how many are defined; ``"undefined"``: names
        with a NaN AUC; ``"no_positives"`` / ``"no_negatives"``: names whose known targets
        hold no 1 / no 0 (a class with no known target is in both); ``"n_positives"`` /
        ``"n_negatives"``: ``{name: count}`` of known targets.

    Raises
    ------
    ValueError
        As :func:`auc_per_class`; ``class_names`` not ``K`` distinct strings.
    """
    t, s = check_scores(y_true, y_score)
    k = t.shape[1]
    if class_names is None:
        names = [f"class_{i}" for i in range(k)]
    else:
        if isinstance(class_names, str):
            raise ValueError("`class_names` must be a sequence of names, not one string; "
                             "wrap it in a list")
        names = list(class_names)
        if len(names) != k or not all(isinstance(n, str) for n in names) or len(set(names)) != k:
            raise ValueError(f"`class_names` must be {k} distinct strings (one per column of y_true), "
                             f"got {names!r}")
    aucs = auc_per_class(t, s)
    pos = np.nansum(t == 1.0, axis=0).astype(int)
    neg = np.nansum(t == 0.0, axis=0).astype(int)
    defined = aucs[~np.isnan(aucs)]
    return {
        "auc": {n: float(a) for n, a in zip(names, aucs)},
        "mean": float(defined.mean()) if defined.size else float("nan"),
        "n_defined": int(defined.size),
        "undefined": [n for n, a in zip(names, aucs) if np.isnan(a)],
        "no_positives": [n for n, p in zip(names, pos) if p == 0],
        "no_negatives": [n for n, q in zip(names, neg) if q == 0],
        "n_positives": {n: int(p) for n, p in zip(names, pos)},
        "n_negatives": {n: int(q) for n, q in zip(names, neg)},
    }
