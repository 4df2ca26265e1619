"""One report -> one value per label, with the evidence for every decision.

Values follow the CheXpert convention: 1 positive, 0 negative, -1 uncertain, ``None``
(a blank cell) not mentioned. Per label, one positive mention makes the label 1; else one
uncertain mention makes it -1; else a negated mention makes it 0. "No Finding" is 1 when no
label (other than the set's ``no_finding_ignores``) is 1 or -1, else 0 (the ChestX-ray14 and
CheXpert definition). "Normal" is 1 when no label and no finding of the set's vocabulary of
abnormal findings (granulomas, degenerative change, devices ...) is mentioned positive or
uncertain, else 0: no abnormality of any kind, as radiologists and the IU X-ray indexers use
the word. Hedged findings ("possible", "versus") are uncertain, and so make Normal 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

from .context import NEGATIVE, POSITIVE, UNCERTAIN, classify
from .text import READ_SECTIONS, sections_to_read, sentences
from .labelsets import LabelSet, load_label_set

__all__ = ["Evidence", "Labels", "label", "aggregate"]


@dataclass(frozen=True)
class Evidence:
    """Why a label got a value in one sentence.

    ``start``/``end`` are the mention's offsets in the report text passed to :func:`label`
    (``text[start:end]`` is ``mention``); ``rule`` is ``"mention"`` (positive, no trigger),
    ``"negative phrase"``, or the trigger that decided, e.g. ``"negated forward 'no'"``;
    ``kind`` is ``"label"`` (a column of the set) or ``"finding"`` (a finding of the vocabulary,
    which only Normal reads).
    """

    label: str
    value: int
    section: str
    sentence: str
    start: int
    end: int
    mention: str
    rule: str
    trigger: str = ""
    kind: str = "label"


def _line(e: Evidence) -> str:
    trig = f" [{e.trigger!r}]" if e.trigger else ""
    what = f"{e.label} (finding)" if e.kind == "finding" else e.label
    return f"{what}={e.value:+d} {e.mention!r} by {e.rule}{trig} in {e.section or 'text'}: {e.sentence}"


class Labels(dict):
    """``label -> 1 | 0 | -1 | None`` (plus No Finding and Normal); ``.evidence`` lists every decision."""

    def __init__(self, values: dict, evidence: Sequence[Evidence], label_set: str, normal: Optional[str] = None
                 ) -> None:
        super().__init__(values)
        self.evidence: list[Evidence] = list(evidence)
        self.label_set = label_set
        self.normal = normal

    def abnormal(self) -> list[Evidence]:
        """The mentions that make the report not normal: every positive or uncertain one, label or finding."""
        return [e for e in self.evidence if e.value in (POSITIVE, UNCERTAIN)]

    def explain(self, name: Optional[str] = None) -> str:
        """The evidence as text, one decision per line (only ``name``'s when given).

        For the Normal column the lines are the mentions that made the report abnormal, or,
        for a normal report, one line saying that no mention was positive or uncertain.
        """
        if name is not None and name == self.normal:
            found = self.abnormal()
            if not found:
                return f"{name}=1: no label or finding is mentioned positive or uncertain"
            return "\n".join(f"{name}=0 because {_line(e)}" for e in found)
        return "\n".join(_line(e) for e in self.evidence if name is None or e.label == name)


_RANK = {POSITIVE: 3, UNCERTAIN: 2, NEGATIVE: 1}


def aggregate(evidence: Sequence[Evidence], ls: LabelSet) -> dict[str, Optional[int]]:
    """Per label: 1 if any mention is positive, else -1 if any is uncertain, else 0 if any is negated, else None.

    Then No Finding (no label but the ignored ones positive or uncertain) and Normal (no label
    and no vocabulary finding positive or uncertain), when the set has them.
    """
    values: dict[str, Optional[int]] = {name: None for name in ls.names}
    for e in evidence:
        if e.kind != "label":
            continue
        cur = values[e.label]
        if cur is None or _RANK[e.value] > _RANK[cur]:
            values[e.label] = e.value
    if ls.no_finding:
        ignore = set(ls.no_finding_ignores)
        found = any(v in (POSITIVE, UNCERTAIN) for k, v in values.items() if k not in ignore)
        values[ls.no_finding] = 0 if found else 1
    if ls.normal:
        values[ls.normal] = 0 if any(e.value in (POSITIVE, UNCERTAIN) for e in evidence) else 1
    return values


def label(text: str, labels: Union[str, LabelSet] = "chestxray14", *,
          sections: Sequence[str] = READ_SECTIONS) -> Labels:
    """Label one report.

    Parameters
    ----------
    text : str
        The report. Its Findings and Impression sections are read when it has headers
        (``FINDINGS:``, ``IMPRESSION:``; see :mod:`chexradi.reports.text`), else the whole text.
    labels : str or LabelSet
        ``"chestxray14"`` (default), ``"chexpert"`` or the path of a YAML label-set file.
    sections : sequence of str
        Section names to read when present.

    Returns
    -------
    Labels
        A dict ``label -> 1 | 0 | -1 | None`` over the set's labels, then its No Finding
        and Normal columns (0 / 1), with ``.evidence`` (a list of :class:`Evidence`, the
        vocabulary's findings included) and ``.explain()`` (``.explain("Normal")``: what made the
        report abnormal).

    Raises
    ------
    ValueError
        ``text`` is not a string or has no words to read.
    chexradi.reports.LabelSetError
        An unknown label set or a bad label-set file.
    """
    if not isinstance(text, str):
        raise ValueError(f"a report must be a string, got {type(text).__name__}.")
    ls = load_label_set(labels)
    secs = sections_to_read(text, sections)
    evidence: list[Evidence] = []
    n = 0
    for sent in sentences(text, secs):
        n += 1
        for m in classify(sent.text, ls):
            evidence.append(Evidence(m.label, m.value, sent.section, sent.text, sent.start + m.start,
                                     sent.start + m.end, m.text, m.rule, m.trigger,
                                     "finding" if m.label in ls.findings else "label"))
    if n == 0:
        raise ValueError("the report has no text to read (no words in its Findings/Impression or elsewhere).")
    return Labels(aggregate(evidence, ls), evidence, ls.name, ls.normal)
