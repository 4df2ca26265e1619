"""Report generation: from a chest radiograph (a study's views) to a written report.

- :mod:`.model` -- ``show_attend_tell``: a chexradi classifier's feature map (frozen or fine-tuned,
  frontal + lateral) read by an LSTM with soft attention (Show, Attend and Tell), optionally
  conditioned on the classifier's predicted labels (Jing et al., 2018);
- :mod:`.decode` -- greedy decoding and batched beam search (width, length penalty, maximum
  length, blocked repeated trigrams) over any step function;
- :mod:`.data` -- studies: views grouped by report, reports as token ids, what was left out counted;
- :mod:`.objective` -- teacher-forced word cross-entropy (+ the labels' BCE) and the validation that
  selects the epoch (BLEU-4, CIDEr, ROUGE-L or the loss) for :func:`chexradi.train.fit`;
- :mod:`.scoring` -- BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap) and clinical efficacy
  (chexradi's report labeler on generated and reference reports), and the text floors that need
  no image;
- :mod:`.run` -- a run folder: train (resumable), generate, evaluate (``chexradi reportgen``).

See docs/report-generation.md.
"""
from __future__ import annotations

from .data import StudyDataset, collate_studies
from .decode import Decoded, beam_search, greedy_decode
from .model import ReportGenerator, show_attend_tell
from .objective import ReportEvaluator, ReportObjective
from .run import DEFAULTS, evaluate_run, generate_reports, load_generator, train_report_generator

__all__ = ["StudyDataset", "collate_studies", "Decoded", "beam_search", "greedy_decode", "ReportGenerator",
           "show_attend_tell", "ReportEvaluator", "ReportObjective", "DEFAULTS", "evaluate_run", "generate_reports",
           "load_generator", "train_report_generator"]
