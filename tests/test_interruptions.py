"""Interruptions: real SIGKILLs at random times, then resume; and outputs a crash cannot leave half-written.

a. ``chexradi extract --batch`` on 40 generated cases, in a subprocess with ``--jobs 2``
   (worker processes) and with ``--scheduler dask --jobs 2``: killed with SIGKILL at K
   seeded random times, one in each of K equal slices of an uninterrupted run (so from
   start-up to near the end), each time run again to completion. The output must hold
   every case exactly once and be byte for byte the output of the uninterrupted run.
   Should no random kill land mid-batch (the journal holding some but not all cases) on
   an unusually fast or slow machine, one more kill is made when the journal holds half
   the cases, so that case is always exercised.
b. ``chexradi iterate`` on a tiny phantom (2 rounds, 2 epochs each): killed with SIGKILL at
   3 seeded random times of the uninterrupted run's work, resumed after each kill (a
   chain), then run to completion; the final history.json (without timings and paths)
   and every round's best weights equal those of an uninterrupted run with the same seed.
c. Atomic outputs: a stale, truncated ``.<name>.*.tmp`` file and a truncated last
   journal line are ignored on the next run; a truncated checkpoint or round record is
   refused with a message naming it, never trusted.

Where each kill landed is printed (``pytest -s``). The killed command runs in its own
session; after the kill of its main process (as the OOM killer would), its orphaned
workers are killed by process group (they write nothing a resumed run reads).
Subprocesses run with one thread per process (OMP_NUM_THREADS=1 ...).
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from chexradi.cli import cli
from chexradi.radiomics.batch import journal_path
from test_batch import write_cases_csv, write_nrrd

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]   # slow: whole runs (make test-fast skips)

SEED = 20261122
N_CASES = 40
N_SMALL = 8  # cases of the in-process tests
FC_ARG = "featureClass:{firstorder: [], glcm: [], glszm: [], shape2D: []}"
# many grey levels make each case cost ~0.1 s, so that on the 2-core test machine about half of a batch run is
# spent on cases (the rest is start-up): random kills then often land mid-batch
BIN_ARG = "binWidth:1.5"
# the killed commands and their references run on one thread each: results do not depend on it and the
# 2-core test machine is not oversubscribed
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
       "PYTHONUNBUFFERED": "1"}


def _command() -> list[str]:
    script = Path(sys.executable).parent / "chexradi"
    return [str(script)] if script.exists() else [sys.executable, "-m", "chexradi.cli"]


def _kill_points(rng: np.random.Generator, k: int, span: float, lo: float = 0.03, hi: float = 0.97) -> list[float]:
    """k times in (lo, hi) x span, one drawn uniformly in each of k equal strata (spread, yet random)."""
    edges = np.linspace(lo, hi, k + 1)
    return [float(span * rng.uniform(a, b)) for a, b in zip(edges[:-1], edges[1:])]


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL what is left of the process group of ``proc`` (its orphaned workers) and reap ``proc``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=30)


def _run_and_kill(cmd: list[str], delay: float, log: Path, cwd: Path) -> bool:
    """Start ``cmd``, SIGKILL its main process after ``delay`` s. Returns True when it was killed, False when
    it had already exited (its status is then checked to be 0)."""
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=ENV, cwd=cwd, start_new_session=True)
        try:
            try:
                rc = proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)  # the main process only, as the OOM killer would
                proc.wait(timeout=30)
                if proc.returncode == 0:  # it finished between the timeout and the kill: not killed
                    return False
                assert proc.returncode == -signal.SIGKILL
                return True
            assert rc == 0, log.read_text(errors="replace")
            return False
        finally:
            _kill_group(proc)


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=cwd)


def _timed(cmd: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = _run(cmd, cwd)
    return proc, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------
# a. chexradi extract --batch
# ------------------------------------------------------------------------------------------------
def _case(folder: Path, i: int, side: int = 128) -> dict[str, str]:
    rng = np.random.default_rng(i)
    image = rng.normal(100.0, 40.0, (side, side)).clip(0, 255).round().astype(np.int16)
    yy, xx = np.mgrid[:side, :side]
    r2 = ((yy - side / 2) / (0.38 * side)) ** 2 + ((xx - side / 2) / (0.33 * side)) ** 2
    mask = (r2 + rng.uniform(0, 0.3, (side, side)) < 1.0).astype(np.uint8)
    write_nrrd(folder / "images" / f"case{i:02d}.nrrd", image)
    write_nrrd(folder / "masks" / f"case{i:02d}.nrrd", mask)
    return {"Patient": f"P{i:02d}", "Image": f"images/case{i:02d}.nrrd", "Mask": f"masks/case{i:02d}.nrrd"}


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cases")
    return write_cases_csv(folder / "cases.csv", [_case(folder, i) for i in range(N_CASES)])


def _journal_state(journal: Path) -> tuple[int, int]:
    """(complete case lines, ok case keys) of a journal; (0, 0) when there is none."""
    if not journal.is_file():
        return 0, 0
    lines = journal.read_bytes().split(b"\n")[:-1]  # the part after the last newline is incomplete
    recs = []
    for ln in lines:
        with contextlib.suppress(ValueError):
            recs.append(json.loads(ln))
    ok = {r["key"] for r in recs if r.get("type") == "case" and r.get("status") == "ok"}
    return sum(r.get("type") == "case" for r in recs), len(ok)


def _run_and_kill_when(cmd: list[str], journal: Path, n_done: int, log: Path, cwd: Path) -> int:
    """Start ``cmd``, SIGKILL its main process as soon as ``journal`` holds ``n_done`` ok cases; returns how many
    it held then (the fallback when no random kill landed mid-batch)."""
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=ENV, cwd=cwd, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while _journal_state(journal)[1] < n_done:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.002)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            _kill_group(proc)
    return _journal_state(journal)[1]


# K random kills: 5 with worker processes, 4 with Dask (whose ~3 s cluster start-up makes each run longer)
@pytest.mark.parametrize("scheduler,k", [("processes", 5), ("dask", 4)])
def test_batch_killed_at_random_times_resumes_exactly(cases: Path, tmp_path: Path, scheduler: str, k: int) -> None:
    if scheduler == "dask":
        pytest.importorskip("distributed")
    base = _command() + ["extract", "--batch", str(cases), "--jobs", "2", "--scheduler", scheduler, "-s", FC_ARG,
                         "-s", BIN_ARG, "--quiet"]
    t_start = time.perf_counter()
    ref = tmp_path / "reference.csv"
    proc = _run(base + ["--out", str(ref)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    reference = ref.read_bytes()
    with open(ref, newline="") as fh:
        assert [r["Patient"] for r in csv.DictReader(fh)] == [f"P{i:02d}" for i in range(N_CASES)]
    # a second uninterrupted run (warm file and numba caches, like the runs below) gives the time the kills are
    # spread over, and shows that uninterrupted runs agree byte for byte
    proc, span = _timed(base + ["--out", str(ref), "--no-resume"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ref.read_bytes() == reference

    def resume_and_check(out: Path, what: str) -> None:
        proc = _run(base + ["--out", str(out)], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() == reference, f"{what}: output differs from the uninterrupted run"
        keys = [json.loads(x)["key"] for x in journal_path(out).read_text().splitlines()[1:]]
        assert len(keys) == len(set(keys)) == N_CASES  # every case exactly once

    rng = np.random.default_rng([SEED, len(scheduler)])
    landed = {"before any case": 0, "mid-batch": 0, "all cases done": 0, "exited before the kill": 0}
    for j, delay in enumerate(_kill_points(rng, k, span)):
        out = tmp_path / f"killed_{j}.csv"
        killed = _run_and_kill(base + ["--out", str(out)], delay, tmp_path / f"log_{j}.txt", tmp_path)
        _, done = _journal_state(journal_path(out))
        where = ("exited before the kill" if not killed else "before any case" if done == 0
                 else "mid-batch" if done < N_CASES else "all cases done")
        landed[where] += 1
        print(f"{scheduler}: kill {j} at {delay:.2f} s of {span:.2f} s: {where} ({done} case(s) in the journal)")
        resume_and_check(out, f"kill {j} at {delay:.2f} s ({where})")
    if not landed["mid-batch"]:  # the machine ran faster or slower than its own reference: make sure of one
        out = tmp_path / "killed_mid.csv"
        done = _run_and_kill_when(base + ["--out", str(out)], journal_path(out), N_CASES // 2,
                                  tmp_path / "log_mid.txt", tmp_path)
        print(f"{scheduler}: no random kill landed mid-batch; one more when the journal held {done} case(s)")
        resume_and_check(out, "kill at half the cases")
    print(f"{scheduler}: {k} random kills, landed {landed}; uninterrupted run {span:.2f} s, whole test "
          f"{time.perf_counter() - t_start:.1f} s")


# ------------------------------------------------------------------------------------------------
# b. chexradi iterate
# ------------------------------------------------------------------------------------------------
SPEC = "phantom:n_train=24,n_val=12,n_test=12,size=64"
VOLATILE = ("seconds", "paths")


def _iterate_cmd(out: Path) -> list[str]:
    return _command() + ["iterate", "--data", SPEC, "--model", "resnet18_ta", "--rounds", "2", "--epochs", "2",
                         "--batch-size", "12", "--jobs", "1", "--device", "cpu", "--quiet", "--out", str(out)]


def _stable_history(out: Path) -> dict[str, Any]:
    doc = json.loads((out / "history.json").read_text())
    settings = {k: v for k, v in doc["settings"].items() if k != "created"}
    return {"settings": settings, "rounds": [{k: v for k, v in r.items() if k not in VOLATILE}
                                             for r in doc["rounds"]]}


def _progress(out: Path) -> str:
    """Where a run folder stands, from its files."""
    if not (out / "run.json").is_file():
        return "start-up (no run.json)"
    for r in range(2):
        rdir = out / f"round_{r}"
        if (rdir / "round.json").is_file():
            continue
        fit = json.loads((rdir / "fit" / "history.json").read_text()) if (rdir / "fit" / "history.json").is_file() \
            else None
        journal = rdir / "radiomics" / "radiomics.csv.journal.jsonl"
        if r > 0 and fit is None:
            n = _journal_state(journal)[1]
            return f"round {r}: radiomics ({n} case(s) in the journal)"
        epochs = len(fit["history"]) if fit else 0
        if fit and fit["finished"]:
            return f"round {r}: heatmaps / evaluation (training finished)"
        return f"round {r}: training ({epochs} epoch(s) saved)"
    return "finished"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from chexradi.nn import load_model

    model, _ = load_model(path)
    return model.state_dict()


def test_iterate_killed_at_random_times_resumes_exactly(tmp_path: Path) -> None:
    t_start = time.perf_counter()
    ref = tmp_path / "reference"
    # the uninterrupted run; how long start-up takes (imports, data) is read from when run.json appears
    t0 = time.perf_counter()
    with open(tmp_path / "log_ref.txt", "wb") as fh:
        proc = subprocess.Popen(_iterate_cmd(ref), stdout=fh, stderr=subprocess.STDOUT, env=ENV, cwd=tmp_path)
        startup = None
        while proc.poll() is None:
            if startup is None and (ref / "run.json").is_file():
                startup = time.perf_counter() - t0
            time.sleep(0.01)
    span = time.perf_counter() - t0
    assert proc.returncode == 0, (tmp_path / "log_ref.txt").read_text()
    startup = startup if startup is not None else 0.2 * span

    # kill points: random times in the reference run's work (after start-up); each resumed run pays the start-up
    # again and then catches up from the last saved state, so it is killed start-up + the next step later
    out = tmp_path / "killed"
    rng = np.random.default_rng([SEED, 7])
    points = [startup + t for t in _kill_points(rng, 3, span - startup, lo=0.05, hi=0.95)]
    mid, previous = 0, 0.0
    for j, target in enumerate(points):
        delay = target if j == 0 else startup + (target - previous)
        previous = target
        killed = _run_and_kill(_iterate_cmd(out), delay, tmp_path / f"log_{j}.txt", tmp_path)
        where = _progress(out) if killed else "exited before the kill"
        mid += int(killed and where not in ("finished", "start-up (no run.json)"))
        print(f"iterate: kill {j} after {delay:.2f} s (reference run: {target:.2f} s of {span:.2f} s, start-up "
              f"{startup:.2f} s): {where}")
    proc = _run(_iterate_cmd(out), tmp_path)
    assert proc.returncode == 0, proc.stderr
    print(f"iterate: {len(points)} random kills, {mid} mid-work; uninterrupted run {span:.1f} s, whole test "
          f"{time.perf_counter() - t_start:.1f} s")
    assert _stable_history(out) == _stable_history(ref)
    for r in (0, 1):
        a, b = _weights(out / f"round_{r}" / "fit" / "best.pt"), _weights(ref / f"round_{r}" / "fit" / "best.pt")
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a), f"round {r} weights differ"
    assert mid >= 1


# ------------------------------------------------------------------------------------------------
# c. atomic outputs
# ------------------------------------------------------------------------------------------------
def _stale_tmp(target: Path, content: bytes, tag: str = "k1ll3d") -> Path:
    """What a crash inside chexradi._io.atomic_path leaves: a hidden, partly written temporary file."""
    p = target.parent / f".{target.name}.{tag}.tmp"
    p.write_bytes(content)
    return p


def test_batch_ignores_stale_tmp_and_truncated_journal_line(cases: Path, tmp_path: Path) -> None:
    with open(cases, newline="") as fh:
        rows = list(csv.DictReader(fh))[:N_SMALL]
    small = write_cases_csv(cases.parent / "cases_small.csv", rows)

    def run(*args: object) -> Any:
        return CliRunner().invoke(cli, ["extract", "--batch", str(small), "-s", FC_ARG, *map(str, args)])

    ref = tmp_path / "ref.csv"
    assert run("--out", ref).exit_code == 0
    reference = ref.read_bytes()
    lines = journal_path(ref).read_bytes().splitlines(keepends=True)

    out = tmp_path / "features.csv"
    # killed while writing the 6th case line (5 complete) and, earlier, while writing the output
    journal_path(out).write_bytes(b"".join(lines[:6]) + lines[6][: len(lines[6]) // 2])
    stale = _stale_tmp(out, reference[: len(reference) // 3])
    res = run("--out", out)
    assert res.exit_code == 0, res.stderr
    assert f"{N_SMALL} case(s): {N_SMALL} ok (5 resumed from the journal), 0 failed" in res.stderr
    assert out.read_bytes() == reference
    assert stale.read_bytes() == reference[: len(reference) // 3]  # never read, never renamed into place
    keys = [json.loads(x)["key"] for x in journal_path(out).read_text().splitlines()[1:]]
    assert len(keys) == len(set(keys)) == N_SMALL

    # a damaged line that is not the last cannot come from a crash: refused, not skipped
    damaged = tmp_path / "damaged.csv"
    journal_path(damaged).write_bytes(b"".join(lines[:3]) + b"{not json\n" + b"".join(lines[3:6]))
    res = run("--out", damaged)
    assert res.exit_code == 2
    assert (f"journal {journal_path(damaged)} is damaged at line 4 (not a JSON record); use a new --out / out=, or "
            "--no-resume / resume=False to recompute every case.") in res.stderr
    assert not damaged.exists()


def test_fit_ignores_stale_tmp_and_refuses_truncated_checkpoints(tmp_path: Path) -> None:
    from chexradi.data.sources import phantom_splits
    from chexradi.nn import create_model
    from chexradi.train import fit

    sp = phantom_splits(6, 3, 1, size=32)
    out = tmp_path / "fit"

    def train() -> Any:
        torch.manual_seed(0)
        model = create_model("resnet18_ta", num_classes=len(sp.class_names), in_chans=1)
        return fit(model, sp.train, sp.val, epochs=2, batch_size=3, device="cpu", progress=False, out=out), model

    _, model = train()
    best = {k: v.clone() for k, v in model.state_dict().items()}
    history = (out / "history.json").read_bytes()
    last_bytes, best_bytes = (out / "last.pt").read_bytes(), (out / "best.pt").read_bytes()

    # a crash while writing: hidden temporaries with partial content; the next run does not read them
    stale = [_stale_tmp(out / "last.pt", last_bytes[:1000]), _stale_tmp(out / "best.pt", best_bytes[:1000]),
             _stale_tmp(out / "history.json", history[:50])]
    _, again = train()
    assert all(torch.equal(again.state_dict()[k], best[k]) for k in best)
    assert (out / "history.json").read_bytes() == history  # finished: nothing retrained, nothing rewritten
    assert all(p.is_file() for p in stale)

    # a truncated last.pt (a damaged copy: atomic writes cannot leave one) is refused, naming it
    (out / "last.pt").write_bytes(last_bytes[: len(last_bytes) // 2])
    with pytest.raises(ValueError) as err:
        train()
    assert str(err.value).startswith(f"cannot read model checkpoint {out / 'last.pt'} ({len(last_bytes) // 2} bytes)")
    assert "The file is truncated or not a torch.save file" in str(err.value)
    # ... and so is a truncated best.pt when last.pt says training finished
    (out / "last.pt").write_bytes(last_bytes)
    (out / "best.pt").write_bytes(best_bytes[:100])
    with pytest.raises(ValueError, match=f"cannot read model checkpoint {out / 'best.pt'} \\(100 bytes\\)"):
        train()


def test_loop_round_records_are_trusted_only_when_complete(tmp_path: Path) -> None:
    from chexradi.loop import History

    run = tmp_path / "run"
    (run / "round_0").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"format": "chexradi-run/1", "rounds": 2}))
    record = json.dumps({"round": 0, "guided": False})
    # a crash while writing round.json leaves only the temporary: the round is not finished
    _stale_tmp(run / "round_0" / "round.json", record[:10].encode())
    assert len(History.load(run)) == 0
    # a truncated round.json itself (a damaged copy) is refused, naming it and the fix
    p = run / "round_0" / "round.json"
    p.write_text(record[:10])
    with pytest.raises(ValueError) as err:
        History.load(run)
    assert str(err.value).startswith(f"cannot read {p}: ")
    assert str(err.value).endswith("; delete the round folder and resume the run")
    res = CliRunner().invoke(cli, ["evaluate", str(run)])
    assert res.exit_code == 2 and f"cannot read {p}: " in res.stderr
    p.write_text(record)
    assert [r["round"] for r in History.load(run)] == [0]
