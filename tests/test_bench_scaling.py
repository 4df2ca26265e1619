"""Smoke test of benchmarks/bench_scaling.py: it runs, writes its JSON, both engines measured, values agree.
Times are never asserted (shared machines)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_scaling.py"


def test_bench_scaling_quick(tmp_path):
    pytest.importorskip("radiomics", reason="PyRadiomics is not installed")
    out = tmp_path / "x.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--dims", "2d", "--bin-widths", "25",
                           "--sizes-2d", "32,64", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "time ∝ voxels^" in proc.stdout
    data = json.loads(out.read_text())
    assert data["engines"] == ["chexradi", "pyradiomics"]
    assert data["memory_note"] and data["versions"]["pyradiomics"]
    rows = data["rows"]
    assert [(r["dim"], r["size"], r["bin_width"]) for r in rows] == [("2d", 32, 25), ("2d", 64, 25)]
    for r in rows:
        assert r["roi_voxels"] > 0 and r["ng"] > 1
        assert r["features"] >= 90
        for e in ("chexradi", "pyradiomics"):
            m = r["engines"][e]
            assert not m["skipped"], (r["size"], e)
            assert m["median_s"] > 0 and len(m["times_s"]) >= 1
            assert m["peak_mb"] >= 0
        assert r["max_rel_diff"] is not None and r["max_rel_diff"] < 1e-6, (r["size"], r["worst_feature"])
    slopes = {(f["engine"], f["dim"], f["bin_width"]) for f in data["fits"]}
    assert slopes == {("chexradi", "2d", 25), ("pyradiomics", "2d", 25)}
