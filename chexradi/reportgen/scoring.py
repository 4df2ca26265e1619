"""Scoring generated reports: the text metrics, clinical efficacy, and the text floors that need no image.

:func:`score_reports` is what a generator's evaluation reports for a split:

- the seven text scores (:func:`chexradi.metrics.text_scores`: BLEU-1..4, METEOR, ROUGE-L, CIDEr
  as R2Gen computes them with pycocoevalcap), on references and hypotheses first passed through
  :func:`chexradi.reports.tokenizer.clean_report` (R2Gen's convention, which the decoder already
  emits; cleaning a clean text changes nothing);
- clinical efficacy (:func:`chexradi.metrics.clinical_efficacy`): chexradi's report labeler
  (:func:`chexradi.reports.label`, a label set's labels without No Finding) run on the cleaned
  reference and the cleaned generated report of every study, the generated labels scored as
  predictions of the reference labels (1 positive; -1 negative unless ``uncertain="positive"``;
  not mentioned negative). Both sides are labelled from the same cleaned text, so the cleaning
  (commas and colons gone, sentences kept) affects them alike.

The **floors** are what a model must beat without looking at an image:

- :func:`most_frequent_report`: every study gets the training split's most frequent report;
- :func:`nearest_label_reports`: every study gets the most frequent training report among those
  whose labels are nearest (Hamming) to the study's labels. Given the test studies' *reference*
  labels it is an oracle: what a perfect label classifier followed by retrieval would write.

This module imports numpy and chexradi's metrics and reports packages; never torch.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Sequence, Union

import numpy as np

from ..metrics.clinical import ClinicalEfficacy, check_uncertain, clinical_efficacy, positive_labels
from ..metrics.text import TextScores, check_text_pairs, text_scores
from ..reports import LabelSet, label, load_label_set
from ..reports.tokenizer import clean_report

__all__ = ["LabelMatrix", "ReportScores", "label_matrix", "score_reports", "most_frequent_report",
           "nearest_label_reports"]


class LabelMatrix(NamedTuple):
    """Labels of N reports: ``values`` (N, K) float of 1 / 0 / -1 / NaN (not mentioned), the K label
    ``names``, and the indices of the reports without a word (``empty``; their rows are all 0)."""

    values: np.ndarray
    names: tuple[str, ...]
    empty: tuple[int, ...]


def label_matrix(texts: Sequence[str], *, label_set: Union[str, LabelSet] = "chestxray14") -> LabelMatrix:
    """Label every report with :func:`chexradi.reports.label`.

    Parameters
    ----------
    texts:
        Report texts.
    label_set:
        ``"chestxray14"`` (default), ``"chexpert"``, a YAML label-set file or a :class:`~chexradi.reports.LabelSet`.

    Returns
    -------
    LabelMatrix
        ``values[i, k]``: 1 positive, 0 negative, -1 uncertain, NaN not mentioned, over the set's
        own labels (not its No Finding column). A text without a word (an empty generated report;
        :func:`~chexradi.reports.label` refuses it) gets a row of 0 (nothing found) and its index
        in ``empty``.

    Raises
    ------
    ValueError
        A text that is not a string (its index named).
    chexradi.reports.LabelSetError
        An unknown label set or a bad label-set file.
    """
    ls = load_label_set(label_set)
    names = tuple(ls.names)
    items = [texts] if isinstance(texts, str) else list(texts)
    values = np.full((len(items), len(names)), np.nan)
    empty: list[int] = []
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise ValueError(f"report {i} must be a string, got {type(text).__name__}")
        try:
            got = label(text, ls)
        except ValueError:  # the labeler's "no text to read": the label set was loaded above
            values[i] = 0.0
            empty.append(i)
            continue
        values[i] = [np.nan if got[n] is None else float(got[n]) for n in names]
    return LabelMatrix(values=values, names=names, empty=tuple(empty))


@dataclass(frozen=True)
class ReportScores:
    """A split's generated reports scored: text metrics and clinical efficacy.

    Attributes
    ----------
    text : TextScores
        BLEU-1..4, METEOR, ROUGE-L, CIDEr (METEOR ``None`` with a reason when not computed).
    clinical : ClinicalEfficacy
        Per label, micro and macro precision / recall / F1 of the generated labels.
    n : int
        Studies.
    empty_hypotheses : int
        Generated reports without a word after cleaning.
    label_set : str
        The label set of the clinical efficacy.
    reference_labels, generated_labels : LabelMatrix
        What the labeler found in each side (for inspection; not in :meth:`as_dict`).
    """

    text: TextScores
    clinical: ClinicalEfficacy
    n: int
    empty_hypotheses: int
    label_set: str
    reference_labels: LabelMatrix
    generated_labels: LabelMatrix

    def row(self) -> dict[str, Optional[float]]:
        """One flat row: ``BLEU_1`` .. ``CIDEr`` then ``CE_P``, ``CE_R``, ``CE_F1`` (micro); ``None`` where
        undefined or not computed."""
        micro = self.clinical.as_dict()["micro"]
        return {**self.text.row(), "CE_P": micro["precision"], "CE_R": micro["recall"], "CE_F1": micro["f1"]}

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: the row, the text scores with their reasons, the clinical table, the counts."""
        return {"row": self.row(), "n": self.n, "empty_hypotheses": self.empty_hypotheses,
                "label_set": self.label_set, "text": self.text.as_dict(), "clinical": self.clinical.as_dict()}


def _strings(texts: Sequence[str], what: str) -> list[str]:
    items = [texts] if isinstance(texts, str) else list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise ValueError(f"{what} {i} must be a string, got {type(t).__name__}")
    return items


def score_reports(references: Sequence[str], hypotheses: Sequence[str], *, ids: Optional[Sequence[Any]] = None,
                  label_set: Union[str, LabelSet] = "chestxray14", meteor: bool = True,
                  uncertain: str = "negative") -> ReportScores:
    """Text metrics and clinical efficacy of generated reports against their references.

    Parameters
    ----------
    references, hypotheses:
        One reference and one generated report per study, in the same order; both are cleaned
        with :func:`~chexradi.reports.tokenizer.clean_report` first. An empty generated report is
        legal and counted.
    ids:
        The studies' ids, named in errors (default: indices).
    label_set:
        The labeler's label set for clinical efficacy.
    meteor:
        Compute METEOR (needs Java; see :func:`chexradi.metrics.text_scores`).
    uncertain:
        How an uncertain (-1) label counts in clinical efficacy: ``"negative"`` or ``"positive"``.

    Returns
    -------
    ReportScores

    Raises
    ------
    ValueError
        Lengths that differ, a text that is not a string, a reference without words (before or
        after cleaning; the studies named, checked before any labelling), an unknown ``uncertain``.
    ImportError
        pycocoevalcap is not installed (``pip install "chexradi[reportgen]"``).
    """
    check_uncertain(uncertain)
    refs = _strings(references, "reference")
    hyps = _strings(hypotheses, "hypothesis")
    check_text_pairs(refs, hyps, ids=ids)
    refs = [clean_report(t) for t in refs]
    hyps = [clean_report(t) for t in hyps]
    _, _, _, empty = check_text_pairs(refs, hyps, ids=ids)
    ls = load_label_set(label_set)
    text = text_scores(refs, hyps, ids=ids, meteor=meteor)
    ref_labels = label_matrix(refs, label_set=ls)
    gen_labels = label_matrix(hyps, label_set=ls)
    clinical = clinical_efficacy(ref_labels.values, gen_labels.values, ref_labels.names, uncertain=uncertain)
    return ReportScores(text=text, clinical=clinical, n=len(refs), empty_hypotheses=len(empty), label_set=ls.name,
                        reference_labels=ref_labels, generated_labels=gen_labels)


# ------------------------------------------------------------------------------------------------
# floors
# ------------------------------------------------------------------------------------------------
def _cleaned(train_texts: Sequence[str]) -> list[str]:
    return [clean_report(t) for t in _strings(train_texts, "training report")]


def most_frequent_report(train_texts: Sequence[str]) -> str:
    """The most frequent cleaned training report: the floor that writes the same report for every study.

    Reports are compared after :func:`~chexradi.reports.tokenizer.clean_report`; reports without a
    word are left out. Ties go to the smallest text in Python's string order (by code point), so the
    answer does not depend on the order of the training reports.

    Raises
    ------
    ValueError
        No training report with words.
    """
    counts = Counter(t for t in _cleaned(train_texts) if t)
    if not counts:
        raise ValueError("no training report has words; give the training split's report texts")
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def nearest_label_reports(train_texts: Sequence[str], train_labels: Any, query_labels: Any) -> list[str]:
    """For each query, the most frequent training report among those whose labels are nearest.

    Labels are binarised (1 positive; 0, -1 and NaN not), and the distance between two label
    vectors is the number of labels on which they differ (Hamming). For each query vector, every
    training report at the smallest distance is a candidate (several label vectors may tie), and
    the answer is the cleaned report that occurs most often among the candidates; ties go to the
    smallest text in Python's string order. Training reports without a word are left out.

    With the test studies' reference labels as queries this is an oracle floor: what a perfect
    label classifier followed by retrieval would write. Vectorised over distinct label vectors
    (IU X-ray: 590 queries against 2069 training reports in a few milliseconds).

    Parameters
    ----------
    train_texts:
        The training reports (N).
    train_labels:
        (N, K) label values of the training reports (1 / 0 / -1 / NaN).
    query_labels:
        (Q, K) label values of the studies to write a report for.

    Returns
    -------
    list of str
        Q cleaned reports.

    Raises
    ------
    ValueError
        Shapes that do not match (the counts named), values other than 1 / 0 / -1 / NaN, no
        training report with words.
    """
    texts = _cleaned(train_texts)
    y = positive_labels(train_labels)
    q = positive_labels(query_labels)
    if y.shape[0] != len(texts):
        raise ValueError(f"{len(texts)} training report(s) but {y.shape[0]} row(s) of training labels: give one "
                         f"label row per report")
    if q.shape[1] != y.shape[1]:
        raise ValueError(f"query labels have {q.shape[1]} column(s) but training labels {y.shape[1]}: give the same "
                         f"labels in the same order")
    keep = np.array([bool(t) for t in texts], dtype=bool)
    if not keep.any():
        raise ValueError("no training report has words; give the training split's report texts")
    kept = [t for t in texts if t]
    vocab = sorted(set(kept))
    index = {t: j for j, t in enumerate(vocab)}
    vecs, inv = np.unique(y[keep], axis=0, return_inverse=True)
    counts = np.zeros((vecs.shape[0], len(vocab)))
    np.add.at(counts, (np.ravel(inv), [index[t] for t in kept]), 1.0)
    if q.shape[0] == 0:
        return []
    qvecs, qinv = np.unique(q, axis=0, return_inverse=True)
    a, b = qvecs.astype(np.int64), vecs.astype(np.int64)
    dist = a @ (1 - b).T + (1 - a) @ b.T
    nearest = (dist == dist.min(axis=1, keepdims=True)).astype(np.float64)
    best = (nearest @ counts).argmax(axis=1)  # the first maximum: the smallest text (vocab is sorted)
    return [vocab[best[j]] for j in np.ravel(qinv)]
