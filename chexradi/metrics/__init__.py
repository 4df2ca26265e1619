"""Evaluation metrics: AUC per class, localisation accuracy, and paired comparisons of models.

- :mod:`.auc` -- AUC per class (NaN for an undefined class, named by :func:`auc_report`);
- :mod:`.localization` -- box overlaps and localisation accuracy at T(IoU) / T(IoBB) (Wang et al.,
  CVPR 2017);
- :mod:`.paired` -- DeLong's test for correlated AUCs (fast algorithm of Sun & Xu, 2014), DeLong
  intervals for a single AUC and for contrasts over models and classes, and a paired bootstrap;
- :mod:`.text` -- report generation's BLEU-1..4, METEOR, ROUGE-L and CIDEr as the papers compute
  them (pycocoevalcap's scorers, R2Gen's convention; METEOR needs Java), and a paired bootstrap of
  two systems' corpus scores;
- :mod:`.clinical` -- clinical efficacy: precision / recall / F1 of generated reports' labels
  against their references' labels, per label, micro and macro.

Everything is importable from :mod:`chexradi.metrics`. These modules import numpy, scipy and
scikit-learn only (and pycocoevalcap when text is scored); never torch.
"""
from __future__ import annotations

from .auc import auc_per_class, auc_report, mean_auc
from .clinical import UNCERTAIN_POLICIES, ClinicalEfficacy, clinical_efficacy, positive_labels
from .localization import (IOBB_THRESHOLDS, IOU_THRESHOLDS, LOCALIZATION_METRICS, LocalizationTable, box_iobb,
                           box_iou, localization_accuracy)
from .paired import (BootstrapResult, DeLongResult, auc_ci, auc_components, bootstrap_indices, delong,
                     delong_contrast, fast_auc, paired_bootstrap, summarize_bootstrap)
from .text import (BOOTSTRAP_METRICS, TEXT_METRICS, TextDifference, TextScores, check_text_pairs, java_status,
                   paired_text_bootstrap, text_scores)

__all__ = ["auc_per_class", "mean_auc", "auc_report",
           "IOU_THRESHOLDS", "IOBB_THRESHOLDS", "LOCALIZATION_METRICS", "box_iou", "box_iobb",
           "localization_accuracy", "LocalizationTable",
           "delong", "DeLongResult", "delong_contrast", "auc_ci", "auc_components", "fast_auc",
           "paired_bootstrap", "BootstrapResult", "bootstrap_indices", "summarize_bootstrap",
           "TEXT_METRICS", "BOOTSTRAP_METRICS", "TextScores", "TextDifference", "text_scores", "java_status",
           "check_text_pairs", "paired_text_bootstrap",
           "UNCERTAIN_POLICIES", "ClinicalEfficacy", "clinical_efficacy", "positive_labels"]
