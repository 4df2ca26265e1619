"""extract_batch(..., scheduler="dask" / "dask:ADDRESS"): same output as worker processes, resume, worker death.

The reference is always the same cases run with ``jobs=1`` (in this process); outputs are compared as text,
so every value must be identical. Clusters are started on loopback, with worker processes.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("distributed", reason="dask[distributed] is not installed (pip install \"chexradi[dask]\")")
import distributed  # noqa: E402

from click.testing import CliRunner  # noqa: E402

from chexradi.cli import cli  # noqa: E402
from chexradi.radiomics import dask_backend  # noqa: E402
from chexradi.radiomics.batch import extract_batch, journal_path, meta_path  # noqa: E402
from test_batch import FC, bad_case, good_case, write_cases_csv, write_nrrd  # noqa: E402

pytestmark = pytest.mark.slow   # whole runs and subprocesses (make test-fast skips them)

N_CASES = 200
COLUMNS = ["Patient", "Image", "Mask", "Site"]
FC_ARG = "featureClass:{firstorder: [], glszm: [], shape2D: []}"


def _journal_cases(out: Path) -> list[dict[str, Any]]:
    lines = journal_path(out).read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("type") == "case"]


_ENV_BEFORE_CLUSTER: dict[str, str] = {}


def _start_cluster(n_workers: int = 2) -> distributed.LocalCluster:
    """A user's cluster on loopback, set up as docs/cli.md advises: its workers get this process's BLAS thread
    settings (Dask's default is 1 thread, which changes the last bits of glcm MCC) and not Dask's
    MALLOC_TRIM_THRESHOLD_ (twice the time per case)."""
    import dask

    with dask.config.set({"distributed.nanny.pre-spawn-environ": dask_backend.local_worker_environ()}):
        return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                        host="127.0.0.1", dashboard_address=None)


@pytest.fixture(scope="module")
def batch200(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """200 small 2-D NRRD cases, their cases.csv and the jobs=1 output (the reference)."""
    folder = tmp_path_factory.mktemp("dask200")
    rows = [{"Patient": f"P{i:03d}", **good_case(folder, i), "Site": "AB"[i % 2]} for i in range(N_CASES)]
    cases = write_cases_csv(folder / "cases.csv", rows, COLUMNS)
    ref = folder / "ref" / "features.csv"
    report = extract_batch(cases, out=ref, featureClass=FC, progress=False)
    assert report.ok and report.n_ok == N_CASES
    return {"folder": folder, "rows": rows, "cases": cases, "ref": ref, "ref_text": ref.read_text()}


@pytest.fixture(scope="module")
def cluster() -> Any:
    environ = dict(os.environ)  # its nannies write their pre-spawn variables into this process's environment
    _ENV_BEFORE_CLUSTER.update(environ)
    c = _start_cluster(2)
    try:
        yield c
    finally:
        c.close()
        dask_backend._restore_environ(environ)


def test_local_workers_get_the_thread_settings_and_not_dasks_malloc_trim(cluster: Any) -> None:
    with distributed.Client(cluster) as client:
        got = client.run(lambda: {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")})
    assert len(got) == 2
    threads = dask_backend._thread_env()["OMP_NUM_THREADS"]
    trim = _ENV_BEFORE_CLUSTER.get("MALLOC_TRIM_THRESHOLD_")  # None, unless set before: then inherited
    assert all(env == {"MALLOC_TRIM_THRESHOLD_": trim, "OMP_NUM_THREADS": threads} for env in got.values()), got


# ------------------------------------------------------------------------------------------
# scheduler values
# ------------------------------------------------------------------------------------------
def test_parse_scheduler_forms() -> None:
    p = dask_backend.parse_scheduler
    assert p(None) == p("processes") == ("processes", None)
    assert p("dask") == ("dask", None)
    assert p("dask:tcp://10.0.0.5:8786") == ("dask", "tcp://10.0.0.5:8786")
    for bad in ("bogus", "dask:", "Dask", "", 3):
        with pytest.raises(ValueError, match=r"'dask:ADDRESS'"):
            p(bad)


def test_missing_dask_is_a_clear_import_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = write_cases_csv(tmp_path / "cases.csv", [good_case(tmp_path, 0)])
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install \"chexradi\[dask\]\""):
        extract_batch(cases, out=tmp_path / "f.csv", scheduler="dask", featureClass=FC, progress=False)
    assert not journal_path(tmp_path / "f.csv").exists()  # nothing written
    with pytest.raises(ValueError, match=r"dask:ADDRESS"):
        extract_batch(cases, out=tmp_path / "f.csv", scheduler="threads", featureClass=FC, progress=False)


# ------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------
def test_local_dask_cluster_equals_jobs1(batch200: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "features.csv"
    environ = dict(os.environ)
    report = extract_batch(batch200["cases"], out=out, scheduler="dask", jobs=2, featureClass=FC, progress=False)
    # distributed's nannies set their pre-spawn variables (MALLOC_TRIM_THRESHOLD_=65536, *_NUM_THREADS) in this
    # process's environment; left there, every process started later inherits them (worker pools ran at half
    # speed): the batch restores the environment
    assert dict(os.environ) == environ
    assert report.ok and (report.n_total, report.n_ok, report.n_failed) == (N_CASES, N_CASES, 0)
    assert out.read_text() == batch200["ref_text"]
    meta = json.loads(meta_path(out).read_text())
    assert meta["scheduler"] == "dask" and meta["counts"]["ok"] == N_CASES
    recs = _journal_cases(out)
    assert len(recs) == N_CASES and len({r["key"] for r in recs}) == N_CASES


def test_user_cluster_address_equals_jobs1(batch200: dict[str, Any], cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "features.csv"
    sched = f"dask:{cluster.scheduler_address}"
    report = extract_batch(batch200["cases"], out=out, scheduler=sched, featureClass=FC, progress=False)
    assert report.ok and report.n_ok == N_CASES
    assert out.read_text() == batch200["ref_text"]
    assert json.loads(meta_path(out).read_text())["scheduler"] == sched
    with distributed.Client(cluster.scheduler_address) as client:  # the user's cluster is left running
        assert len(client.nthreads()) == 2


def test_resume_interrupted_dask_batch(batch200: dict[str, Any], cluster: Any, tmp_path: Path) -> None:
    folder, rows = batch200["folder"], batch200["rows"]
    half = write_cases_csv(folder / "cases_half.csv", rows[: N_CASES // 2], COLUMNS)
    sched = f"dask:{cluster.scheduler_address}"
    out = tmp_path / "features.csv"
    first = extract_batch(half, out=out, scheduler=sched, featureClass=FC, progress=False)
    assert first.ok and first.n_ok == N_CASES // 2
    second = extract_batch(batch200["cases"], out=out, scheduler=sched, featureClass=FC, progress=False)
    assert second.ok and (second.n_ok, second.n_skipped_resumed) == (N_CASES, N_CASES // 2)
    assert out.read_text() == batch200["ref_text"]
    recs = _journal_cases(out)
    assert len(recs) == N_CASES and len({r["key"] for r in recs}) == N_CASES  # no case run twice

    # the scheduler is not part of the journal's identity: processes -> dask resumes too
    out2 = tmp_path / "mixed.csv"
    assert extract_batch(half, out=out2, jobs=1, featureClass=FC, progress=False).ok
    third = extract_batch(batch200["cases"], out=out2, scheduler=sched, featureClass=FC, progress=False)
    assert third.ok and third.n_skipped_resumed == N_CASES // 2
    assert out2.read_text() == batch200["ref_text"]


def test_bad_case_is_a_failure_with_its_row(cluster: Any, tmp_path: Path) -> None:
    rows = [good_case(tmp_path, i) for i in range(4)] + [bad_case(tmp_path, "label_absent")]
    rows += [good_case(tmp_path, i) for i in range(4, 8)]
    cases = write_cases_csv(tmp_path / "cases.csv", rows)
    ref = extract_batch(cases, out=tmp_path / "ref.csv", jobs=1, featureClass=FC, progress=False)
    report = extract_batch(cases, out=tmp_path / "f.csv", scheduler=f"dask:{cluster.scheduler_address}",
                           featureClass=FC, progress=False)
    assert (report.n_total, report.n_ok, report.n_failed) == (9, 8, 1)
    (f,) = report.failures
    assert f.row == 5 and f.image == rows[4]["Image"] and "labels present: 2" in f.reason
    assert [(x.row, x.reason) for x in ref.failures] == [(f.row, f.reason)]
    assert (tmp_path / "f.csv").read_text() == (tmp_path / "ref.csv").read_text()
    meta = json.loads(meta_path(tmp_path / "f.csv").read_text())
    assert [m["row"] for m in meta["failures"]] == [5]


def test_worker_killed_mid_batch(tmp_path: Path) -> None:
    """SIGKILL one of two workers while cases run: every case still done exactly once, same values."""
    n = 24
    rng = np.random.default_rng(7)
    rows = []
    for i in range(n):  # cases slow enough (~0.1-0.2 s) that the batch is still running at the kill
        img = rng.normal(100.0, 40.0, (128, 128)).clip(0, 255).round().astype(np.int16)
        msk = np.zeros((128, 128), np.uint8)
        msk[4 + i % 5:120, 6:122 - i % 7] = 1
        write_nrrd(tmp_path / f"img{i}.nrrd", img)
        write_nrrd(tmp_path / f"msk{i}.nrrd", msk)
        rows.append({"Image": f"img{i}.nrrd", "Mask": f"msk{i}.nrrd"})
    cases = write_cases_csv(tmp_path / "cases.csv", rows)
    settings = {"binWidth": 1}
    out = tmp_path / "features.csv"

    c = _start_cluster(2)
    try:
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["report"] = extract_batch(cases, out=out, scheduler=f"dask:{c.scheduler_address}",
                                                 progress=False, **settings)
            except BaseException as exc:  # pragma: no cover - reported below
                result["error"] = exc

        th = threading.Thread(target=target, daemon=True)
        th.start()
        deadline = time.monotonic() + 60
        done_at_kill = None
        with distributed.Client(c.scheduler_address) as client:
            while time.monotonic() < deadline and th.is_alive():
                jp = journal_path(out)
                if jp.exists() and len(_journal_cases(out)) >= 3:
                    pids = client.run(os.getpid)
                    done_at_kill = len(_journal_cases(out))
                    os.kill(next(iter(pids.values())), signal.SIGKILL)
                    break
                time.sleep(0.02)
        th.join(120)
        assert not th.is_alive(), "the batch did not finish after a worker was killed"
    finally:
        c.close()
    assert "error" not in result, result.get("error")
    assert done_at_kill is not None and done_at_kill < n, "the worker was not killed mid-batch"
    report = result["report"]
    assert report.ok and report.n_ok == n
    recs = _journal_cases(out)
    assert len(recs) == n and len({r["key"] for r in recs}) == n
    ref = extract_batch(cases, out=tmp_path / "ref.csv", jobs=1, progress=False, **settings)
    assert ref.ok
    assert out.read_text() == (tmp_path / "ref.csv").read_text()


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------
def test_cli_scheduler_dask_end_to_end(batch200: dict[str, Any], tmp_path: Path) -> None:
    folder, rows = batch200["folder"], batch200["rows"]
    cases = write_cases_csv(folder / "cases_cli.csv", rows[:12], COLUMNS)
    ref = tmp_path / "ref.csv"
    assert extract_batch(cases, out=ref, jobs=1, featureClass=FC, progress=False).ok
    out = tmp_path / "features.csv"
    res = CliRunner().invoke(cli, ["extract", "--batch", str(cases), "--out", str(out), "--scheduler", "dask",
                                   "--jobs", "2", "--setting", FC_ARG, "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert out.read_text() == ref.read_text()
    meta = json.loads(meta_path(out).read_text())
    assert meta["scheduler"] == "dask" and meta["counts"]["ok"] == 12


def test_cli_bad_scheduler_exits_2(batch200: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "features.csv"
    for bad in ("bogus", "dask:"):
        res = CliRunner().invoke(cli, ["extract", "--batch", str(batch200["cases"]), "--out", str(out),
                                       "--scheduler", bad])
        assert res.exit_code == 2, res.output
        for form in ("processes", "dask", "dask:ADDRESS"):
            assert form in res.output
    assert not out.exists() and not journal_path(out).exists()


def test_loop_radiomics_on_dask_equals_processes(tmp_path: Path) -> None:
    """`iterate(..., radiomics={"scheduler": "dask"})`: the same vectors, hence the same History, as processes."""
    import chexradi

    spec = "phantom:n_train=16,n_val=8,n_test=8,size=64"
    kw: dict[str, Any] = dict(model="resnet18_ta", rounds=2, train={"epochs": 1, "batch_size": 8}, progress=False)
    a = chexradi.iterate(spec, out=tmp_path / "proc", radiomics={"jobs": 1}, **kw)
    b = chexradi.iterate(spec, out=tmp_path / "dask", radiomics={"jobs": 2, "scheduler": "dask"}, **kw)
    va = (tmp_path / "proc" / "round_1" / "radiomics" / "radiomics.csv").read_text()
    vb = (tmp_path / "dask" / "round_1" / "radiomics" / "radiomics.csv").read_text()
    rows_a = sorted(line.split(",", 2)[2] for line in va.splitlines()[1:])  # drop Image, Mask (other folders)
    rows_b = sorted(line.split(",", 2)[2] for line in vb.splitlines()[1:])
    assert rows_a == rows_b and len(rows_a) > 100
    for ra, rb in zip(a, b):
        assert ra["auc"] == rb["auc"] and ra["loc_iou"] == rb["loc_iou"]
    meta = json.loads((tmp_path / "dask" / "round_1" / "radiomics" / "radiomics.csv.meta.json").read_text())
    assert str(meta["scheduler"]).startswith("dask")
