"""`chexradi iterate` and `chexradi evaluate` end to end on a tiny phantom, and their usage errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chexradi.cli import cli
from chexradi.loop import History
from chexradi.nn import list_models
from conftest import TINY_PHANTOM_SPEC

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]   # slow: whole runs (make test-fast skips)

SPEC = TINY_PHANTOM_SPEC
TINY = ["--data", SPEC, "--model", "resnet18_ta", "--epochs", "1", "--batch-size", "10", "--jobs", "1", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("iterate") / "run"
    res = CliRunner().invoke(cli, ["iterate", *TINY, "--rounds", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_iterate_writes_the_run_and_prints_the_history(run: tuple[Path, str]) -> None:
    out, output = run
    h = History.load(out)
    assert len(h) == 2 and [r["guided"] for r in h] == [False, True]
    assert h.table() in output  # the table printed is the table of the records on disk
    assert h.auc_table() in output
    assert (out / "history.png").stat().st_size > 1000
    with open(out / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["mean_auc:image"]) for r in rows] == pytest.approx([r["mean_auc"]["image"] for r in h])
    settings = json.loads((out / "run.json").read_text())
    assert settings["train"]["epochs"] == 1 and settings["radiomics"]["jobs"] == 1
    assert settings["model"] == "resnet18_ta" and settings["data"] == SPEC


def test_rerun_resumes_without_training(run: tuple[Path, str]) -> None:
    out, output = run
    before = (out / "round_1" / "fit" / "best.pt").stat().st_mtime_ns
    res = CliRunner().invoke(cli, ["iterate", *TINY, "--rounds", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "round_1" / "fit" / "best.pt").stat().st_mtime_ns == before
    assert History.load(out).table() in res.output


def test_evaluate_reprints_and_replots(run: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = run
    res = CliRunner().invoke(cli, ["evaluate", str(out), "--plot", str(tmp_path / "c.png"), "--localization"])
    assert res.exit_code == 0, res.output
    assert History.load(out).table() in res.output
    assert "2 of 2 round(s) finished" in res.output
    assert "localisation accuracy (iou)" in res.output and "iou>0.1" in res.output
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_control_arm_has_no_radiomics(tmp_path: Path) -> None:
    out = tmp_path / "control"
    res = CliRunner().invoke(cli, ["iterate", *TINY, "--rounds", "2", "--no-guidance", "--out", str(out)])
    assert res.exit_code == 0, res.output
    h = History.load(out)
    assert [r["guided"] for r in h] == [False, False]
    assert h[1]["heads"] == ["image"] and h[1]["sources"] == {} and h[1]["seconds"]["sources"] == {}
    assert not (out / "round_1" / "radiomics").exists()
    assert json.loads((out / "run.json").read_text())["guidance"]["enabled"] is False


def test_arm_options_from_the_command_line(run: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "lungs"
    res = CliRunner().invoke(cli, ["iterate", *TINY, "--rounds", "2", "--guidance-masks", "lungs", "--round0-from",
                                   str(run[0]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    settings = json.loads((out / "run.json").read_text())
    assert settings["guidance"]["masks"] == "lungs" and settings["round0_from"] == str(run[0])
    assert settings["train"]["output_stride"] == 16
    h = History.load(out)
    assert [r["arm"] for r in h] == ["lungs", "lungs"] and "lungs" in h.table()
    # the same folder with another arm: refused by name, exit 2, nothing trained
    res = CliRunner().invoke(cli, ["iterate", *TINY, "--rounds", "2", "--guidance-masks", "random", "--out", str(out)])
    assert res.exit_code == 2 and "'lungs' arm, not 'random'" in res.output
    s32 = tmp_path / "s32"
    res = CliRunner().invoke(cli, ["iterate", *TINY, "--rounds", "1", "--output-stride", "32", "--out", str(s32)])
    assert res.exit_code == 0, res.output
    from chexradi.nn import load_model

    model, _ = load_model(s32 / "round_0" / "fit" / "best.pt")
    assert model.config["output_stride"] == 32


@pytest.mark.parametrize("args, needle", [
    (["--data", "nosuch:x"], "unknown source 'nosuch'"),
    (["--data", "chestxray14:/no/such/dir"], "/no/such/dir does not exist"),
    (["--data", "phantom:bogus=1"], "unknown phantom option(s) bogus"),
    (["--data", SPEC, "--setting", "binWidth:-1"], "binWidth"),
])
def test_bad_input_exits_2_before_any_work(tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "never"
    res = CliRunner().invoke(cli, ["iterate", *args, "--out", str(out), "--quiet"])
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert not (out / "round_0").exists()


def test_bad_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "loop.yaml"
    cfg.write_text("train: {epochs: 1}\nbogus: {a: 1}\n")
    res = CliRunner().invoke(cli, ["iterate", "--data", SPEC, "--out", str(tmp_path / "r"), "--config", str(cfg)])
    assert res.exit_code == 2 and "bogus" in res.output and "train, heatmap, guidance, radiomics" in res.output
    cfg.write_text("train: {epoch: 1}\n")
    res = CliRunner().invoke(cli, ["iterate", "--data", SPEC, "--out", str(tmp_path / "r"), "--config", str(cfg)])
    assert res.exit_code == 2 and "unknown train setting(s) 'epoch'" in res.output and "epochs" in res.output


def test_changed_settings_refuse_to_resume(run: tuple[Path, str]) -> None:
    out, _ = run
    args = [a if a != "1" else "2" for a in TINY[:6]] + TINY[6:]  # --epochs 2
    res = CliRunner().invoke(cli, ["iterate", *args, "--rounds", "2", "--out", str(out)])
    assert res.exit_code == 2 and "cannot resume" in res.output and "train" in res.output


def test_evaluate_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["evaluate", str(tmp_path)])
    assert res.exit_code == 2 and "run.json" in res.output


def test_help_is_torch_free_and_offers_every_model() -> None:
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from chexradi.cli import cli; "
            "r = CliRunner().invoke(cli, ['iterate', '--help']); print(r.output); "
            "sys.exit(('torch' in sys.modules) + 2 * ('numba' in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr  # neither torch nor numba imported for --help
    assert all(name in proc.stdout for name in list_models("classifier"))


def test_unreadable_images_fail_early_or_are_skipped(tmp_path: Path) -> None:
    from chexradi.data.phantom import write_phantom
    from chexradi.data.sources import open_data

    write_phantom(tmp_path / "ph", 15, size=64)
    bad = sorted((tmp_path / "ph" / "images").glob("*.png"))[3]
    bad.write_bytes(bad.read_bytes()[:40])  # a truncated PNG: the header is cut
    spec = f"csv:{tmp_path / 'ph' / 'labels.csv'}"
    res = CliRunner().invoke(cli, ["iterate", "--data", spec, "--out", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 2 and bad.name in res.output and "--skip-bad-images" in res.output, res.output
    assert not (tmp_path / "r" / "round_0").exists()
    kept = open_data(spec, size=64, on_error="skip")
    ok = open_data(spec, size=64, validate=False)
    assert sum(len(d) for d in kept if d is not None) == sum(len(d) for d in ok if d is not None) - 1
    assert all(r.path != bad for d in kept if d is not None for r in d.records)
