"""WorkerPool: radiomics worker processes started before a batch and kept for several batches.

The outputs of batches run on a pool must be byte-identical to one process's; the pool must be
refused when it was built for other settings; a worker that died between batches is replaced
without failing any case; and the loop starts one pool per run and gives it to every guided round.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from test_batch import FC, make_batch

import chexradi
from chexradi.radiomics import workers as workers_mod
from chexradi.radiomics.batch import extract_batch, journal_path
from chexradi.radiomics.workers import WorkerPool


def _slow_pid() -> int:
    time.sleep(0.3)  # long enough that every worker gets one
    return os.getpid()


def _pids(pool: WorkerPool) -> set[int]:
    ex = pool.executor()
    return {f.result() for f in [ex.submit(_slow_pid) for _ in range(2 * pool.jobs)]}


@pytest.fixture
def pool():
    p = WorkerPool(featureClass=FC, jobs=2)
    yield p
    p.close()


def test_pool_batches_equal_one_process_and_keep_their_workers(tmp_path: Path, pool: WorkerPool) -> None:
    cases, _ = make_batch(tmp_path, n_good=10, bad=("missing",))
    ref = extract_batch(cases, out=tmp_path / "ref.csv", featureClass=FC, jobs=1)
    assert ref.n_ok == 10 and ref.n_failed == 1
    before = _pids(pool)
    assert len(before) == 2
    for name in ("a.csv", "b.csv"):
        rep = extract_batch(cases, out=tmp_path / name, featureClass=FC, jobs=5, pool=pool)  # jobs: the pool's
        assert (rep.n_ok, rep.n_failed) == (10, 1)
        assert [f.row for f in rep.failures] == [11]
        assert (tmp_path / name).read_bytes() == (tmp_path / "ref.csv").read_bytes()
    assert _pids(pool) == before  # the same two processes served both batches
    pool.close()
    assert "closed" in repr(pool)


def _journal_records(path: Path) -> dict[str, dict]:
    """A journal's case records by key, without their timings; checks that every line is the canonical
    JSON of its record (what encoding the whole record in the batch's process writes)."""
    out = {}
    for line in journal_path(path).read_text(encoding="utf-8").splitlines()[1:]:
        rec = json.loads(line)
        assert json.dumps(rec, ensure_ascii=False, default=str) == line
        rec.pop("seconds")
        out[rec["key"]] = rec
    return out


def test_records_encoded_by_the_workers_write_what_one_process_writes(tmp_path, pool, monkeypatch) -> None:
    """Workers send each case's journal text and CSV cells with its record (workers.encode_records); the
    journal lines and the outputs are those one process writes, with the cells held in memory or, beyond
    _HELD_RESULTS, made again from the journal."""
    from chexradi.radiomics import batch

    cases, _ = make_batch(tmp_path, n_good=6, bad=("missing", "empty_mask"))
    for fmt in ("csv", "json"):
        ref = extract_batch(cases, out=tmp_path / f"ref.{fmt}", featureClass=FC, jobs=1, fmt=fmt)
        assert (ref.n_ok, ref.n_failed) == (6, 2)
        for held in (10_000, 2, 0):
            monkeypatch.setattr(batch, "_HELD_RESULTS", held)
            out = tmp_path / f"pool{held}.{fmt}"
            rep = extract_batch(cases, out=out, featureClass=FC, pool=pool, fmt=fmt)
            assert (rep.n_ok, rep.n_failed) == (6, 2)
            assert _journal_records(out) == _journal_records(tmp_path / f"ref.{fmt}")
            if fmt == "csv":
                assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes()
            else:
                assert json.loads(out.read_text())["records"] == json.loads((tmp_path / "ref.json").read_text())[
                    "records"]


def test_encode_records_text_and_cells() -> None:
    rec = {"status": "ok", "features": {"a": 0.1, "b": float("nan"), "c": None, "d": "x,y"}, "seconds": 0.5}
    bad = {"status": "failed", "reason": "missing: é"}
    (r1, t1, c1), (r2, t2, c2) = workers_mod.encode_records([rec, bad], "extract", cells=True)
    assert r1 is rec and t1 == json.dumps(rec) and t2 == '{"status": "failed", "reason": "missing: é"}'
    assert c1 == ("0.1", "nan", "", "x,y") and c2 is None  # "x,y": the cells are not joined
    assert [c for _, _, c in workers_mod.encode_records([rec], "extract", cells=False)] == [None]
    assert workers_mod.encode_records([rec], "validate", cells=True) == [(rec, None, None)]


def test_encoded_text_and_cells_equal_json_and_csv_cells_of_each_record() -> None:
    """The shared-repr encoding (every value a finite float) writes json.dumps' bytes and csv_cells' text;
    other records take json.dumps and csv_cells themselves."""
    rng = np.random.default_rng(7)
    names = ["original_glcm_Idmn", 'quote"d', "é_ü", "back\\slash", "tab\tname"]
    finite = [0.1, -0.0, 5e-324, 1e300, -2.5e-8, 1e16, 123456789.0, float(rng.normal()), 3.0]
    odd = [float("nan"), float("inf"), None, 7, np.float64(0.25), True, "x,y"]
    for trial in range(300):
        values = [finite[k] for k in rng.integers(0, len(finite), len(names))]
        if trial % 3 == 0:
            values[int(rng.integers(0, len(names)))] = odd[trial // 3 % len(odd)]
        rec = {"status": "ok", "features": dict(zip(names, values)), "seconds": float(rng.random())}
        ((r, text, cells),) = workers_mod.encode_records([rec], "extract", cells=True)
        assert r is rec
        assert text == json.dumps(rec, ensure_ascii=False, default=str)
        assert cells == workers_mod.csv_cells(rec["features"])
        ((_, text2, none),) = workers_mod.encode_records([rec], "extract", cells=False)
        assert text2 == text and none is None
    empty = {"status": "ok", "features": {}, "seconds": 0.1}
    assert workers_mod.encode_records([empty], "extract", cells=True)[0][1:] == (json.dumps(empty), ())


def test_pool_must_match_the_batch(tmp_path: Path, pool: WorkerPool) -> None:
    cases, _ = make_batch(tmp_path, n_good=2)
    with pytest.raises(ValueError, match="other settings or another engine"):
        extract_batch(cases, out=tmp_path / "x.csv", featureClass=FC, binWidth=5, pool=pool)
    with pytest.raises(ValueError, match="cannot be combined with scheduler"):
        extract_batch(cases, out=tmp_path / "x.csv", featureClass=FC, pool=pool, scheduler="dask")
    with pytest.raises(ValueError, match="is not a WorkerPool"):
        extract_batch(cases, out=tmp_path / "x.csv", featureClass=FC, pool=object())
    with pytest.raises(ValueError, match="jobs=-1"):
        WorkerPool(featureClass=FC, jobs=-1)
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_worker_dead_between_batches_is_replaced(tmp_path: Path, pool: WorkerPool, caplog) -> None:
    cases, _ = make_batch(tmp_path, n_good=8)
    extract_batch(cases, out=tmp_path / "ref.csv", featureClass=FC, jobs=1)
    victim = sorted(_pids(pool))[0]
    os.kill(victim, signal.SIGKILL)
    time.sleep(1.0)  # the executor notices the death while idle, as after a long training epoch
    with caplog.at_level(logging.WARNING, logger="chexradi.radiomics.batch"):
        rep = extract_batch(cases, out=tmp_path / "a.csv", featureClass=FC, pool=pool)
    assert rep.n_ok == 8 and rep.n_failed == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()
    assert "died since the last batch" in caplog.text
    assert victim not in _pids(pool)


def test_warm_up_runs_the_kernels_and_tolerates_settings_it_cannot_meet(caplog) -> None:
    ext = chexradi.Extractor(binWidth=8)
    workers_mod._warm_up(ext)  # the 24 x 24 synthetic case: no error
    strict = chexradi.Extractor(minimumROISize=10_000)  # the synthetic ROI (288 px) is too small: refused
    with caplog.at_level(logging.DEBUG, logger="chexradi.radiomics.batch"):
        workers_mod._warm_up(strict)
    assert "warm-up case failed" in caplog.text and "minimumROISize" in caplog.text


@pytest.mark.slow
def test_loop_starts_one_pool_per_run_and_gives_it_to_every_guided_round(tmp_path: Path, monkeypatch) -> None:
    import chexradi.guidance.radiomics as features

    started: list[WorkerPool] = []
    given: list[object] = []
    real_init, real_extract = WorkerPool.__init__, features.extract_cases

    def counting_init(self, *a, **kw):
        real_init(self, *a, **kw)
        started.append(self)

    def spying_extract(*a, **kw):
        given.append(kw.get("pool"))
        return real_extract(*a, **kw)

    monkeypatch.setattr(WorkerPool, "__init__", counting_init)
    monkeypatch.setattr(features, "extract_cases", spying_extract)
    out = tmp_path / "run"
    h = chexradi.iterate("phantom:n_train=24,n_val=12,n_test=12,size=64", model="resnet18_ta", rounds=3, out=out,
                         train={"epochs": 1, "batch_size": 12}, radiomics={"jobs": 2}, progress=False)
    assert [r["guided"] for r in h.rounds] == [False, True, True]
    assert len(started) == 1 and given == [started[0], started[0]]
    assert "closed" in repr(started[0])  # closed at the end of the run
    # the values are one process's: extract round 2's cases again in this process
    rad = out / "round_2" / "radiomics"
    extract_batch(rad / "cases.csv", out=tmp_path / "again.csv", params={"binWidth": 8}, jobs=1)
    assert (tmp_path / "again.csv").read_bytes() == (rad / "radiomics.csv").read_bytes()
