"""Labels mined from radiology reports (weak supervision for the loop).

- :func:`label` — one report's text -> ``{label: 1 | 0 | -1 | None, ..., "No Finding": 0 | 1,
  "Normal": 0 | 1}`` with ``.evidence`` (sentence, span, rule) for every decision; Normal reads
  the vocabulary of abnormal findings beyond the labels (``labelsets/findings.yaml``);
- :func:`label_reports` — IU X-ray / OpenI XML, a CSV with a text column, or ``.txt`` files
  -> a :class:`ReportTable` whose ``write_csv`` output ``chexradi iterate --data csv:FILE``
  trains on;
- :func:`load_label_set` — a built-in label set (``chestxray14``, ``chexpert``) or a user's
  YAML label set, validated;
- :mod:`chexradi.reports.reference` — IU X-ray's human MeSH indexing mapped to the 14 labels
  and Normal, the two fixed halves of the IU reports, and precision / recall / F1.

The pipeline: sections (:mod:`.text`) -> sentences -> mentions and ConText triggers
(:mod:`.context`, rules in ``labelsets/context.yaml``) -> one value per label (:mod:`.labeler`).
Why chexradi has its own ConText implementation rather than medspaCy is in docs/reports.md.
"""
from __future__ import annotations

from .batch import ReportTable, label_reports
from .context import NEGATIVE, POSITIVE, UNCERTAIN, Mention, classify
from .labeler import Evidence, Labels, label
from .sources import FORMATS, Report, ReportError, SourceError, read_reports
from .labelsets import BUILTIN_SETS, BUILTIN_VOCABULARIES, LabelSet, Rule, LabelSetError, load_label_set, load_rules

__all__ = ["label", "label_reports", "load_label_set", "load_rules", "read_reports", "classify", "Labels",
           "Evidence", "Mention", "ReportTable", "Report", "ReportError", "LabelSet", "Rule", "LabelSetError",
           "SourceError", "BUILTIN_SETS", "BUILTIN_VOCABULARIES", "FORMATS", "POSITIVE", "NEGATIVE", "UNCERTAIN"]
