"""Smoke test of the batch throughput part of benchmarks/bench_extract.py (values only, never times)."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # whole runs and subprocesses (make test-fast skips them)

REPO = Path(__file__).resolve().parents[1]
RUNS = ["chexradi_jobs1", "chexradi_jobs2", "chexradi_dask2", "chexradi_cli1", "chexradi_cli2",
        "pyradiomics_cli1", "pyradiomics_cli2", "pyengine_jobs1", "pyengine_jobs2"]


def test_bench_extract_batch_quick(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_extract.py"), "--quick", "--batch-only",
         "--batch-cases", "4", "--scaling-cases", "6", "--scaling-repeat", "2", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "## batch: 4 radiographs 256x256" in proc.stdout
    payload = json.loads(out.read_text())
    batch = payload["batch"]
    assert batch["cases"] == 4 and batch["size"] == [256, 256] and batch["features"] > 90
    assert batch["startup_included"] is True and batch["per_image_speedup_jobs1"] > 0
    rows = {r["key"]: r for r in batch["rows"]}
    assert sorted(rows) == sorted(RUNS)
    for key, r in rows.items():
        assert r["seconds"] > 0 and r["cases_per_s"] > 0, key
        assert r["peak_mb"] > 0 and r["x_pyradiomics"] > 0 and r["x_jobs1"] > 0, key
        assert (r["case_ms_median"] is None) == key.startswith("pyradiomics_cli"), key
    assert rows["chexradi_jobs2"]["jobs"] == rows["chexradi_dask2"]["jobs"] == 2
    agree = batch["agreement"]
    assert agree["chexradi_rows_identical"] is True
    assert sorted(agree["chexradi_rows"]) == sorted(k for k in RUNS if k.startswith("chexradi"))
    assert agree["max_rel_diff_chexradi_vs_pyradiomics_cli"] <= 1e-6
    assert agree["max_rel_diff_engine_pyradiomics_vs_pyradiomics_cli"] <= 1e-6
    assert agree["max_rel_diff_pyradiomics_cli_jobs1_vs_jobs2"] == 0.0
    scaling = payload["jobs_scaling"]
    assert scaling["cases"] == 6 and scaling["identical"] is True
    assert [r["key"] for r in scaling["rows"]] == ["jobs1", "jobs2", "dask2"]
    assert all(r["seconds"] > 0 and r["case_ms_median"] > 0 for r in scaling["rows"])
    assert [len(r["runs_s"]) for r in scaling["rows"]] == [2, 2, 1]  # jobs 1 and 2 alternated twice, dask once
    assert all(r["seconds"] == pytest.approx(statistics.median(r["runs_s"])) for r in scaling["rows"])


def test_bench_batch_memory_quick(tmp_path: Path) -> None:
    """benchmarks/bench_batch_memory.py: every mode (all values held, the default, none held) writes the same
    output (the script asserts it), and the JSON has each mode's memory and time."""
    out = tmp_path / "m.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_batch_memory.py"), "--n", "30,60", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "outputs identical in every mode" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["n"] for r in rows] == [30, 60]
    for r in rows:
        for mode in ("all held", "default", "none held"):
            assert r[mode]["ok"] == r["n"] and r[mode]["seconds"] > 0 and r[mode]["driver_growth_mb"] >= 0
        assert len({r[m]["sha256"] for m in ("all held", "default", "none held")}) == 1
