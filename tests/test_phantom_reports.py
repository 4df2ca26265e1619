"""Reports of the phantom written from its ground truth, and the report labeler reading them back."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import binom

from chexradi.cli import cli
from chexradi.data.phantom import generate, make_case, write_phantom
from chexradi.data.phantom_reports import HEDGE_RATE, NEGATE_RATE, write_report
from chexradi.reports import label


@pytest.fixture(scope="module")
def cases():
    return generate(300, size=96, seed=3).cases


def _expected(case, rep) -> dict[str, object]:
    """What the labeler should read: 1 (or -1 when hedged) for a present finding, 0 when stated absent, blank.

    "Borderline heart size; cannot exclude mild cardiomegaly." states a borderline heart size, which
    the labeler reads as Cardiomegaly 1 (a degree, not a hedge: docs/reports.md, "Normal").
    """
    out = {}
    for name, v in zip(case.class_names, case.labels):
        hedged = -1 if not (name == "Cardiomegaly" and "Borderline heart size" in rep.text) else 1
        out[name] = (hedged if name in rep.hedged else 1) if v else (0 if name in rep.negated else None)
    return out


@pytest.mark.slow
def test_the_labeler_reads_back_exactly_what_was_written(cases):
    for c in cases:
        rep = write_report(c, seed=3)
        got = label(rep.text)
        assert {n: got.get(n) for n in c.class_names} == _expected(c, rep), rep.text
        # no other ChestX-ray14 label is mentioned, and No Finding and Normal follow the labels
        assert all(got.get(n) is None for n in got if n not in c.class_names and n not in ("No Finding", "Normal"))
        assert got["No Finding"] == got["Normal"] == int(not c.labels.any())


def test_rates_wording_and_determinism(cases):
    reps = [write_report(c, seed=3) for c in cases]
    n_present = sum(int(c.labels.sum()) for c in cases)
    n_absent = sum(int((c.labels == 0).sum()) for c in cases)
    hedged = sum(len(r.hedged) for r in reps)
    negated = sum(len(r.negated) for r in reps)
    assert binom.ppf(0.0005, n_present, HEDGE_RATE) <= hedged <= binom.ppf(0.9995, n_present, HEDGE_RATE)
    assert binom.ppf(0.0005, n_absent, NEGATE_RATE) <= negated <= binom.ppf(0.9995, n_absent, NEGATE_RATE)
    sentences = {s for r in reps for s in r.findings.split(". ")}
    assert len(sentences) > 150  # varied wording, not one template per class
    assert all(r.text.startswith("FINDINGS: ") and "\nIMPRESSION: " in r.text for r in reps)
    again = write_report(cases[7], seed=3)
    assert (again.findings, again.impression) == (reps[7].findings, reps[7].impression)
    assert write_report(cases[7], seed=4).findings != reps[7].findings or not cases[7].labels.any()
    normal = next(r for c, r in zip(cases, reps) if not c.labels.any())
    assert "acute" in normal.impression.lower()


def test_report_describes_side_size_and_severity():
    c = make_case(5, size=128, seed=2, force=("Nodule", "Cardiomegaly"), suppress=("Mass", "Effusion", "Pneumothorax",
                                                                                     "Infiltration"))
    rep = write_report(c, seed=2, hedge_rate=0.0, negate_rate=1.0)
    side = c.meta["Nodule"]["side"]
    assert side in rep.findings.lower() and "nodule" in rep.findings.lower()
    d = c.meta["Nodule"]["diameter_mm"]
    assert f"{d:.0f} mm" in rep.findings or f"{d / 10:.1f} cm" in rep.findings or "nodule in the" in rep.findings
    assert any(w in rep.findings.lower() for w in ("mild", "moderate", "marked"))
    assert rep.negated == ["Effusion", "Infiltration", "Mass", "Pneumothorax"]
    with pytest.raises(ValueError, match="hedge_rate"):
        write_report(c, seed=2, hedge_rate=1.5)


def test_write_phantom_saves_reports_and_label_reports_recovers_the_labels(tmp_path: Path):
    out = tmp_path / "ph"
    write_phantom(out, 120, size=64, seed=1)
    with open(out / "reports.csv", newline="") as fh:
        reports = list(csv.DictReader(fh))
    with open(out / "labels.csv", newline="") as fh:
        truth = {r["Image Index"]: r for r in csv.DictReader(fh)}
    assert [r["Image Index"] for r in reports] == list(truth)
    res = CliRunner().invoke(cli, ["label-reports", str(out / "reports.csv"), "--text-col", "findings,impression",
                                   "--id-col", "Image Index", "--split", "none", "--quiet", "--out",
                                   str(tmp_path / "mined.csv")])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "mined.csv", newline="") as fh:
        mined = {r["Image"]: r for r in csv.DictReader(fh)}
    names = ["Nodule", "Mass", "Effusion", "Cardiomegaly", "Pneumothorax", "Infiltration"]
    for c in names:
        # uncertain read as present (U-ones), blank as absent: the labels come back exactly
        pred = np.array([1 if mined[i][c] in ("1", "-1") else 0 for i in truth])
        want = np.array([int(truth[i][c]) for i in truth])
        assert (pred == want).all(), c
