"""`chexradi extract`: one case, batches, resume (including a run killed with SIGKILL), errors.

Most tests use click's CliRunner in this process; a smoke test and the kill/resume
test run the real command in a subprocess.
"""
from __future__ import annotations

import json
import math
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

import chexradi
from chexradi.cli import cli, parse_setting
from chexradi.radiomics.batch import journal_path, meta_path
from test_batch import (BAD_KINDS, FC, _image_and_mask, assert_row_matches_extract, bad_case, good_case, make_batch,
                        read_csv, write_cases_csv, write_nrrd)

FC_ARG = "featureClass:{firstorder: [], glszm: [], shape2D: []}"
assert parse_setting(FC_ARG) == ("featureClass", FC)


def run(*args: Any, ok: bool = True) -> Result:
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return res


def parse_lines(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        name, value = line.split(",")
        out[name] = float(value)
    return out


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return list(a) == list(b) and all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


# ------------------------------------------------------------------------------------------
# one case
# ------------------------------------------------------------------------------------------
def test_single_case_default_settings_equals_extract_nrrd_and_png(tmp_path: Path) -> None:
    for kind in ("nrrd", "png"):
        case = good_case(tmp_path, 1, kind=kind)
        img, msk = tmp_path / case["Image"], tmp_path / case["Mask"]
        res = run("extract", img, msk)
        ref = chexradi.extract(str(img), str(msk))  # every class
        assert any(k.startswith("original_glszm_") for k in ref)
        assert same(parse_lines(res.stdout), ref)
        assert res.stderr == ""


def test_single_case_settings_label_json_and_out(tmp_path: Path) -> None:
    image, mask = _image_and_mask(2)
    write_nrrd(tmp_path / "img.nrrd", image.astype(np.int16))
    write_nrrd(tmp_path / "msk.nrrd", mask * 3)
    img, msk = tmp_path / "img.nrrd", tmp_path / "msk.nrrd"
    ref = chexradi.extract(str(img), str(msk), label=3, binWidth=10, featureClass=FC)

    res = run("extract", img, msk, "--label", 3, "--setting", "binWidth:10", "-s", FC_ARG)
    assert same(parse_lines(res.stdout), ref)

    res = run("extract", img, msk, "--label", 3, "--setting", "binWidth:10", "-s", FC_ARG, "--format", "json")
    assert json.loads(res.stdout) == {k: (v if math.isfinite(v) else None) for k, v in ref.items()}

    out = tmp_path / "res" / "one.csv"
    res = run("extract", img, msk, "--label", 3, "-s", "binWidth:10", "-s", FC_ARG, "--out", out)
    assert res.stdout == ""
    assert same(parse_lines(out.read_text()), ref)
    meta = json.loads(meta_path(out).read_text())
    assert meta["settings"]["setting"]["binWidth"] == 10.0 and meta["settings"]["setting"]["label"] == 3
    assert meta["versions"] == chexradi.versions() and meta["engine"] == "numba"

    out_json = tmp_path / "one.json"  # format inferred from the suffix
    run("extract", img, msk, "--label", 3, "-s", "binWidth:10", "-s", FC_ARG, "--out", out_json)
    assert json.loads(out_json.read_text())["original_firstorder_Mean"] == ref["original_firstorder_Mean"]


def test_single_case_failure_and_validate(tmp_path: Path) -> None:
    bad = bad_case(tmp_path, "label_absent")
    res = run("extract", tmp_path / bad["Image"], tmp_path / bad["Mask"], ok=False)
    assert res.exit_code == 1
    assert "labels present: 2" in res.stderr and "Traceback" not in res.output
    res = run("extract", tmp_path / bad["Image"], tmp_path / bad["Mask"], "--label", 2, "--validate")
    assert res.stdout.startswith("ok:") and "label 2" in res.stdout
    res = run("extract", tmp_path / "nope.nrrd", tmp_path / bad["Mask"], ok=False)
    assert res.exit_code == 1 and "image file not found" in res.stderr


def test_param_file_yaml_and_json(tmp_path: Path) -> None:
    case = good_case(tmp_path, 4)
    img, msk = str(tmp_path / case["Image"]), str(tmp_path / case["Mask"])
    params = {"setting": {"binWidth": 5, "label": 1}, "featureClass": {"firstorder": ["Mean", "Entropy"], "glszm": []}}
    ref = chexradi.extract(img, msk, params=params)
    assert "original_firstorder_Entropy" in ref and "original_firstorder_Median" not in ref
    yaml_file = tmp_path / "params.yaml"
    yaml_file.write_text("setting:\n  binWidth: 5\n  label: 1\nfeatureClass:\n  firstorder: [Mean, Entropy]\n"
                         "  glszm:\n")
    json_file = tmp_path / "params.json"
    json_file.write_text(json.dumps(params))
    for f in (yaml_file, json_file):
        assert same(parse_lines(run("extract", img, msk, "--param", f).stdout), ref)
    # --setting overrides the file
    ref10 = chexradi.extract(img, msk, params=params, binWidth=10)
    assert same(parse_lines(run("extract", img, msk, "-p", yaml_file, "-s", "binWidth:10").stdout), ref10)

    bad = tmp_path / "bad.yaml"
    bad.write_text("setting:\n  binWidth: [\n")
    res = run("extract", img, msk, "--param", bad, ok=False)
    assert res.exit_code == 2 and "not valid YAML" in res.stderr and "Traceback" not in res.output
    bad.write_text("setting:\n  binwidth: 5\n")
    res = run("extract", img, msk, "--param", bad, ok=False)
    assert res.exit_code == 2 and "unknown setting(s) 'binwidth'" in res.stderr and "binWidth" in res.stderr
    res = run("extract", img, msk, "--param", tmp_path / "missing.yaml", ok=False)
    assert res.exit_code == 2 and "--param" in res.stderr


def test_setting_parsing() -> None:
    assert parse_setting("binWidth:10") == ("binWidth", 10)
    assert parse_setting("binWidth:2.5") == ("binWidth", 2.5)
    assert parse_setting("binWidth:1e1") == ("binWidth", 10.0)
    assert parse_setting("force2D:true") == ("force2D", True)
    assert parse_setting("distances:[1,2]") == ("distances", [1, 2])
    assert parse_setting("resegmentRange:[-3,3]") == ("resegmentRange", [-3, 3])
    assert parse_setting(" binCount : null ") == ("binCount", None)
    assert parse_setting("interpolator:sitkLinear") == ("interpolator", "sitkLinear")
    for bad in ("binWidth10", ":10", "distances:[1,"):
        with pytest.raises(ValueError):
            parse_setting(bad)


def test_setting_errors_exit_2(tmp_path: Path) -> None:
    case = good_case(tmp_path, 0)
    img, msk = tmp_path / case["Image"], tmp_path / case["Mask"]
    res = run("extract", img, msk, "--setting", "binWidth10", ok=False)
    assert res.exit_code == 2 and "--setting" in res.stderr and "NAME:VALUE" in res.stderr
    res = run("extract", img, msk, "--setting", "binWidht:10", ok=False)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "binWidht" in res.stderr and "valid settings:" in res.stderr
    assert all(n in res.stderr for n in ("binWidth", "force2D", "resegmentRange", "distances"))
    res = run("extract", img, msk, "--setting", "binWidth:-3", ok=False)
    assert res.exit_code == 2 and "binWidth=-3" in res.stderr
    res = run("extract", img, msk, "-s", "featureClass:{glcmm: []}", ok=False)
    assert res.exit_code == 2 and "valid classes" in res.stderr
    # the same checks guard a batch, before any case runs
    cases, _ = make_batch(tmp_path / "b", n_good=1)
    out = tmp_path / "b" / "f.csv"
    res = run("extract", "--batch", cases, "--out", out, "-s", "force2D:maybe", ok=False)
    assert res.exit_code == 2 and "force2D" in res.stderr and not journal_path(out).exists()


# ------------------------------------------------------------------------------------------
# batches
# ------------------------------------------------------------------------------------------
def test_batch_jobs_1_and_2_identical_with_bad_cases(tmp_path: Path) -> None:
    kinds = tuple(k for k, _ in BAD_KINDS)
    cases, rows = make_batch(tmp_path, n_good=8, bad=kinds)
    outs = {}
    for jobs in (1, 2):
        out = tmp_path / f"features_j{jobs}.csv"
        res = run("extract", "--batch", cases, "--out", out, "--jobs", jobs, "-s", FC_ARG, ok=False)
        assert res.exit_code == 1, res.output
        err = res.stderr
        assert f"{8 + len(kinds)} case(s): 8 ok, {len(kinds)} failed" in err
        assert f"features: {out}" in err and f"metadata: {meta_path(out)}" in err
        for row, (kind, expected) in enumerate(BAD_KINDS, start=9):
            line = next(x for x in err.splitlines() if x.strip().startswith(f"row {row} "))
            assert expected in line and rows[row - 1]["Image"] in line, line
        outs[jobs] = out.read_bytes()
        failures = json.loads(meta_path(out).read_text())["failures"]
        assert [f["row"] for f in failures] == list(range(9, 9 + len(kinds)))
    assert outs[1] == outs[2]
    got = read_csv(tmp_path / "features_j2.csv")
    assert [r["Patient"] for r in got] == [f"P{i:02d}" for i in range(8)]  # carried, in input order
    assert list(got[0])[:4] == ["Patient", "Image", "Mask", "Site"] and got[1]["Site"] == "A"
    for r in got:
        assert_row_matches_extract(r, tmp_path, featureClass=FC)


def test_batch_json_format_and_quiet(tmp_path: Path) -> None:
    cases, _ = make_batch(tmp_path, n_good=3)
    out = tmp_path / "features.json"
    res = run("extract", "--batch", cases, "--out", out, "-s", FC_ARG, "--quiet")
    assert res.stdout == "" and res.stderr == ""
    doc = json.loads(out.read_text())
    assert doc["metadata"]["format"] == "json" and len(doc["records"]) == 3
    run("extract", "--batch", cases, "--out", tmp_path / "f.csv", "-s", FC_ARG)
    for rec, row in zip(doc["records"], read_csv(tmp_path / "f.csv")):
        assert list(rec) == list(row)
        carried = ("Patient", "Image", "Mask", "Site")
        assert [rec[k] for k in carried] == [row[k] for k in carried]
        assert all(rec[k] == float(row[k]) for k in rec if k.startswith("original_"))
    assert run("extract", "--batch", cases, "--out", tmp_path / "x.out", "-f", "json", "-s", FC_ARG).exit_code == 0
    assert "records" in json.loads((tmp_path / "x.out").read_text())


def test_batch_resume_after_simulated_crash(tmp_path: Path) -> None:
    cases, _ = make_batch(tmp_path, n_good=8)
    out = tmp_path / "features.csv"
    run("extract", "--batch", cases, "--out", out, "-s", FC_ARG)
    reference = out.read_bytes()
    lines = journal_path(out).read_bytes().splitlines(keepends=True)
    journal_path(out).write_bytes(b"".join(lines[:4]) + lines[4][:25])  # 3 cases done, 4th line cut
    out.unlink()
    res = run("extract", "--batch", cases, "--out", out, "-s", FC_ARG)
    assert "8 ok (3 resumed from the journal), 0 failed" in res.stderr
    assert out.read_bytes() == reference

    # --no-resume recomputes everything
    res = run("extract", "--batch", cases, "--out", out, "-s", FC_ARG, "--no-resume")
    assert "resumed" not in res.stderr and out.read_bytes() == reference


def test_batch_changed_settings_refused(tmp_path: Path) -> None:
    cases, _ = make_batch(tmp_path, n_good=2)
    out = tmp_path / "features.csv"
    run("extract", "--batch", cases, "--out", out, "-s", FC_ARG)
    res = run("extract", "--batch", cases, "--out", out, "-s", FC_ARG, "-s", "binWidth:5", ok=False)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "different settings" in res.stderr and "--out" in res.stderr and "--no-resume" in res.stderr
    assert "binWidth: 25.0 -> 5.0" in res.stderr
    run("extract", "--batch", cases, "--out", out, "-s", FC_ARG, "-s", "binWidth:5", "--no-resume")
    for r in read_csv(out):
        assert_row_matches_extract(r, tmp_path, featureClass=FC, binWidth=5)


def test_batch_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases, _ = make_batch(tmp_path, n_good=3, bad=("size_mismatch", "nan_pixels"))
    monkeypatch.setattr(chexradi.Extractor, "execute", lambda *a, **k: pytest.fail("--validate computed features"))
    out = tmp_path / "features.csv"
    res = run("extract", "--batch", cases, "--out", out, "--validate", ok=False)
    assert res.exit_code == 1
    assert "validated 5 case(s): 3 ok, 2 failed" in res.stderr and "nothing computed or written" in res.stderr
    assert "row 4 " in res.stderr and "differs from mask size" in res.stderr
    assert "row 5 " in res.stderr and "NaN" in res.stderr
    assert not out.exists() and not journal_path(out).exists() and not meta_path(out).exists()
    # without --out, and all good -> 0
    cases_ok, _ = make_batch(tmp_path / "ok", n_good=2)
    res = run("extract", "--batch", cases_ok, "--validate")
    assert "validated 2 case(s): 2 ok, 0 failed" in res.stderr


def test_batch_input_errors(tmp_path: Path) -> None:
    good_case(tmp_path, 0)
    out = tmp_path / "f.csv"
    no_image = tmp_path / "no_image.csv"
    no_image.write_text("Path,Mask\nimages/case0.nrrd,masks/case0.nrrd\n")
    res = run("extract", "--batch", no_image, "--out", out, ok=False)
    assert res.exit_code == 2 and "no 'Image' column" in res.stderr and "columns found: Path, Mask" in res.stderr
    assert "Traceback" not in res.output

    dup = write_cases_csv(tmp_path / "dup.csv",
                          [good_case(tmp_path, 0), good_case(tmp_path, 1), good_case(tmp_path, 0)])
    res = run("extract", "--batch", dup, "--out", out, ok=False)
    assert res.exit_code == 2 and "duplicate cases" in res.stderr and "rows 1 and 3" in res.stderr

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cases = write_cases_csv(tmp_path / "cases.csv", [good_case(tmp_path, 0)])
    res = run("extract", "--batch", cases, "--out", blocker / "out" / "f.csv", ok=False)
    assert res.exit_code == 2 and "cannot create the folder of out=" in res.stderr
    res = run("extract", good_case(tmp_path, 0)["Image"], "m", "--out", blocker / "f.csv", ok=False)
    assert res.exit_code == 2 and "--out" in res.stderr

    res = run("extract", "--batch", tmp_path / "nope.csv", "--out", out, ok=False)
    assert res.exit_code == 2 and "does not exist" in res.stderr
    assert not journal_path(out).exists()


def test_usage_errors_help_and_version() -> None:
    for args, msg in [(["extract"], "give IMAGE and MASK"), (["extract", "a.nrrd"], "missing argument MASK"),
                      (["extract", "a", "b", "--batch", __file__, "--out", "x.csv"], "not both"),
                      (["extract", "--batch", __file__], "--batch needs --out"),
                      (["extract", "a", "b", "--engine", "torch"], "'torch' is not one of"),
                      (["extract", "a", "b", "--jobs", "-1"], "--jobs"),
                      (["iterate"], "Missing option '--data'"), (["nosuch"], "No such command")]:
        res = run(*args, ok=False)
        assert res.exit_code == 2 and msg in res.stderr, (args, res.stderr)
    res = run("--version")
    lines = res.stdout.splitlines()
    assert lines[0] == f"chexradi {chexradi.__version__}"
    import numpy
    import torch
    assert re.search(rf"^  numpy +{re.escape(numpy.__version__)}$", res.stdout, re.M)
    assert re.search(rf"^  torch +{re.escape(torch.__version__.split('+')[0])}$", res.stdout, re.M)
    assert re.search(r"^  pyradiomics-bhklab \[pyradiomics\] +3\.", res.stdout, re.M)   # an extra, installed here
    assert re.search(r"^  matplotlib \[demo, plot\] +\d", res.stdout, re.M)
    assert re.search(r"^  java \(METEOR\) +", res.stdout, re.M)
    top = run("--help").stdout
    assert "extract" in top and "Examples:" in top
    text = run("extract", "--help").stdout
    for opt in ("--batch", "--out", "--param", "--setting", "--label", "--engine", "--jobs", "--format", "--validate",
                "--no-resume", "--quiet", "Examples:", "chexradi extract --batch cases.csv --out features.csv"):
        assert opt in text, opt


def test_extract_offers_the_engines_the_extractor_runs() -> None:
    from chexradi.radiomics.extractor import ENGINES

    res = CliRunner().invoke(cli, ["extract", "--help"])
    assert res.exit_code == 0 and f"[{'|'.join(ENGINES)}]" in res.output


# ------------------------------------------------------------------------------------------
# real subprocesses
# ------------------------------------------------------------------------------------------
def _command() -> list[str]:
    script = Path(sys.executable).parent / "chexradi"
    return [str(script)] if script.exists() else [sys.executable, "-m", "chexradi.cli"]


def test_console_script_smoke(tmp_path: Path) -> None:
    case = good_case(tmp_path, 5, kind="png")
    img, msk = str(tmp_path / case["Image"]), str(tmp_path / case["Mask"])
    proc = subprocess.run(_command() + ["extract", img, msk, "-s", FC_ARG], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert same(parse_lines(proc.stdout), chexradi.extract(img, msk, featureClass=FC))
    proc = subprocess.run([sys.executable, "-m", "chexradi.cli", "extract", img, msk, "-s", "binWidth10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "NAME:VALUE" in proc.stderr


def test_killed_batch_resumes(tmp_path: Path) -> None:
    """SIGKILL a real batch once its journal holds a case, re-run: every case exactly once, as uninterrupted."""
    n = 12
    rows = [{"Patient": f"P{i:02d}", **good_case(tmp_path, i)} for i in range(n)]
    # The last image is a FIFO: reading it blocks, so the run is always still going when it is killed.
    last = tmp_path / rows[-1]["Image"]
    content = last.read_bytes()
    last.unlink()
    os.mkfifo(last)
    cases = write_cases_csv(tmp_path / "cases.csv", rows)
    out = tmp_path / "features.csv"
    journal = journal_path(out)
    cmd = _command() + ["extract", "--batch", str(cases), "--out", str(out), "-s", FC_ARG]
    with open(tmp_path / "log.txt", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if journal.exists() and journal.read_bytes().count(b"\n") >= 2:
                    break
                assert proc.poll() is None, (tmp_path / "log.txt").read_text()
                time.sleep(0.005)
            else:
                pytest.fail("the batch wrote no case to its journal in 90 s")
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = journal.read_bytes().count(b"\n") - 1
    assert 1 <= done < n and not out.exists()

    last.unlink()
    last.write_bytes(content)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"{n} ok ({done} resumed from the journal), 0 failed" in proc.stderr
    # an uninterrupted run on a copy gives the same bytes
    fresh = tmp_path / "fresh.csv"
    run("extract", "--batch", cases, "--out", fresh, "-s", FC_ARG)
    assert out.read_bytes() == fresh.read_bytes()
    got = read_csv(out)
    assert [r["Patient"] for r in got] == [r["Patient"] for r in rows]
    keys = [json.loads(x)["key"] for x in journal.read_text().splitlines()[1:]]
    assert len(keys) == len(set(keys)) == n


def test_verbose_logs_each_failure(tmp_path: Path) -> None:
    cases, _ = make_batch(tmp_path, n_good=1, bad=("empty_mask",))
    out = tmp_path / "f.csv"
    quiet = run("extract", "--batch", cases, "--out", out, "-s", FC_ARG, "-q", ok=False)
    assert "INFO" not in quiet.stderr and "row 2 " in quiet.stderr  # --quiet still lists failures
    res = run("-v", "extract", "--batch", cases, "--out", out, "-s", FC_ARG, ok=False)
    assert res.exit_code == 1
    assert "INFO chexradi.radiomics.batch: resuming: 1 of 2 case(s) already done" in res.stderr
    assert "INFO chexradi.radiomics.batch: row 2 failed" in res.stderr
