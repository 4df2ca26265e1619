"""The ChexRadiNet loop: :func:`iterate`, its :class:`History` and :func:`plot_history`.

One stage per module, data flowing one way (:mod:`.run` calls the others; none calls back):

- :mod:`.settings` — the four settings groups, defaults and checks;
- :mod:`.training` — stage 1: train a round (image-only or radiomics-guided) and evaluate both heads;
- :mod:`.regions` — stage 2: heatmaps -> masks and boxes for every image, ``regions.csv``;
- :mod:`.arms` — stage 2b: the masks a guided round measures radiomics in (``cam``, the oracle
  ``truth``, the controls ``random`` and ``lungs``) and their IoU with the ground truth;
- :mod:`.features` — stage 3: radiomics inside the masks -> guidance vectors;
- :mod:`.history` — the per-round records, tables and plots;
- :mod:`.run` — :func:`iterate`: the rounds, the run folder, resume.
"""
from __future__ import annotations

from .history import History, plot_history
from .run import iterate
from .settings import DEFAULTS

__all__ = ["iterate", "History", "plot_history", "DEFAULTS"]
