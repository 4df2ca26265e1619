"""The ``chexradi`` command line: one module per command.

Commands: ``extract`` (radiomics features of one case or of a batch), ``heatmap`` (a trained
model's class heatmaps as overlays, masks and boxes), ``phantom`` (a synthetic data set),
``iterate`` (the radiomics-guided loop), ``evaluate`` (reprint a finished run), ``compare`` (arms
against a control arm, with confidence intervals), ``label-reports`` (labels mined from
radiology reports) and ``reportgen`` (report generation: ``train``, ``generate``, ``evaluate``). What they share -- the group, exit-code exceptions, logging, ``--setting``
-- is in :mod:`.common`; the choices they offer come from :mod:`chexradi.names`.

Exit codes: 0 success; 1 a case failed; 2 usage error, invalid settings or
parameter file, or a cases/output problem found before any work; 130
interrupted (a batch resumes when run again).
"""
from __future__ import annotations

from typing import Optional, Sequence

from . import compare, evaluate, extract, heatmap, iterate, label_reports, phantom, reportgen  # noqa: F401 - registers them
from .common import CONTEXT, CaseFailed, ConfigError, cli, parse_setting

__all__ = ["cli", "main", "parse_setting", "ConfigError", "CaseFailed", "CONTEXT"]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Console-script entry point (``chexradi``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="chexradi")
