"""extract_batch: cases files, worker processes, failures, journal, resume, outputs.

Every test writes real NRRD / PNG files to tmp_path and compares the batch's
numbers with ``chexradi.extract`` run on the same files in this process.
The helpers at the top are shared with test_cli.py.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

import chexradi
from chexradi.radiomics import workers as workers_mod
from chexradi.radiomics.batch import extract_batch, journal_path, load_cases, meta_path
from chexradi.radiomics.cases import Case
from chexradi.radiomics.journal import JOURNAL_KIND, Journal
from chexradi.radiomics.outputs import write_csv

# A few classes keep the tests fast; the CLI tests also run the default (every class) once.
FC: dict[str, list[str]] = {"firstorder": [], "glszm": [], "shape2D": []}

# (name, expected substring of the failure reason)
BAD_KINDS = [
    ("missing", "not found"),
    ("label_absent", "labels present: 2"),
    ("empty_mask", "is empty"),
    ("size_mismatch", "differs from mask size"),
    ("nan_pixels", "NaN"),
    ("unreadable", "cannot read"),
]


# ------------------------------------------------------------------------------------------
# helpers (also used by test_cli.py)
# ------------------------------------------------------------------------------------------
def _image_and_mask(seed: int, shape: tuple[int, int] = (24, 26)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 40.0, shape).clip(0, 255).round()
    mask = np.zeros(shape, np.uint8)
    y0, x0 = 3 + seed % 4, 4 + seed % 3
    mask[y0:y0 + 10 + seed % 5, x0:x0 + 12] = 1
    mask[y0 + 2, x0 + 13] = 1  # not a rectangle
    return image, mask


def write_nrrd(path: Path, arr: np.ndarray, spacing: tuple[float, float] = (0.7, 0.9)) -> Path:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(reversed(spacing)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))
    return path


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, np.uint8), mode="L").save(path)
    return path


def good_case(folder: Path, i: int, *, kind: str = "nrrd") -> dict[str, str]:
    """Write case i (NRRD int16 or PNG uint8) under folder/images and folder/masks; paths relative to folder."""
    image, mask = _image_and_mask(i)
    if kind == "png":
        write_png(folder / "images" / f"case{i}.png", image)
        write_png(folder / "masks" / f"case{i}.png", mask)
        return {"Image": f"images/case{i}.png", "Mask": f"masks/case{i}.png"}
    write_nrrd(folder / "images" / f"case{i}.nrrd", image.astype(np.int16))
    write_nrrd(folder / "masks" / f"case{i}.nrrd", mask)
    return {"Image": f"images/case{i}.nrrd", "Mask": f"masks/case{i}.nrrd"}


def bad_case(folder: Path, kind: str) -> dict[str, str]:
    """Write a case that must fail for the reason ``kind`` (see BAD_KINDS)."""
    image, mask = _image_and_mask(99)
    img = f"images/bad_{kind}.nrrd"
    msk = f"masks/bad_{kind}.nrrd"
    if kind == "missing":
        write_nrrd(folder / msk, mask)
        img = "images/does_not_exist.nrrd"
    elif kind == "label_absent":
        write_nrrd(folder / img, image.astype(np.int16))
        write_nrrd(folder / msk, mask * 2)
    elif kind == "empty_mask":
        write_nrrd(folder / img, image.astype(np.int16))
        write_nrrd(folder / msk, np.zeros_like(mask))
    elif kind == "size_mismatch":
        write_nrrd(folder / img, image.astype(np.int16))
        write_nrrd(folder / msk, mask[:20, :20])
    elif kind == "nan_pixels":
        f = image.astype(np.float32)
        ys, xs = np.nonzero(mask)
        f[ys[3], xs[3]] = np.nan
        write_nrrd(folder / img, f)
        write_nrrd(folder / msk, mask)
    elif kind == "unreadable":
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / img).write_bytes(b"NRRD0004\n# truncated header\x00\x01\x02")
        write_nrrd(folder / msk, mask)
    else:  # pragma: no cover
        raise ValueError(kind)
    return {"Image": img, "Mask": msk}


def write_cases_csv(path: Path, rows: list[dict[str, Any]], columns: Optional[list[str]] = None) -> Path:
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, columns)
        w.writeheader()
        w.writerows(rows)
    return path


def make_batch(folder: Path, n_good: int = 8, bad: tuple[str, ...] = ()) -> tuple[Path, list[dict[str, Any]]]:
    """cases.csv with n_good cases (the last two are PNG), then the bad ones; extra columns Patient and Site."""
    rows = []
    for i in range(n_good):
        row = {"Patient": f"P{i:02d}", **good_case(folder, i, kind="png" if i >= n_good - 2 else "nrrd"),
               "Site": "A" if i % 2 else "B"}
        rows.append(row)
    for j, kind in enumerate(bad):
        rows.append({"Patient": f"BAD-{kind}", **bad_case(folder, kind), "Site": "X"})
    return write_cases_csv(folder / "cases.csv", rows, ["Patient", "Image", "Mask", "Site"]), rows


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def assert_row_matches_extract(row: dict[str, str], folder: Path, **settings: Any) -> None:
    ref = chexradi.extract(str(folder / row["Image"]), str(folder / row["Mask"]), **settings)
    got = {k: v for k, v in row.items() if k.startswith("original_")}
    assert list(got) == list(ref), "feature columns differ from chexradi.extract's names/order"
    for k, v in ref.items():
        g = float(got[k])
        assert (math.isnan(g) and math.isnan(v)) or g == v, f"{row['Image']} {k}: batch {g!r} != extract {v!r}"


# ------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------
def test_batch_values_carried_columns_and_meta(tmp_path: Path) -> None:
    cases, rows = make_batch(tmp_path, n_good=6)
    out = tmp_path / "out" / "features.csv"  # folder created
    report = extract_batch(cases, out=out, featureClass=FC, progress=False)
    assert report.ok and (report.n_total, report.n_ok, report.n_failed, report.n_skipped_resumed) == (6, 6, 0, 0)
    assert report.out == out and report.meta_path == meta_path(out) and report.journal == journal_path(out)

    got = read_csv(out)
    assert [r["Patient"] for r in got] == [r["Patient"] for r in rows]
    header = list(got[0])
    assert header[:4] == ["Patient", "Image", "Mask", "Site"]  # carried columns first, in input order
    assert all(h.startswith("original_") for h in header[4:])
    for r_in, r_out in zip(rows, got):
        assert (r_out["Image"], r_out["Mask"], r_out["Site"]) == (r_in["Image"], r_in["Mask"], r_in["Site"])
        assert_row_matches_extract(r_out, tmp_path, featureClass=FC)

    meta = json.loads(meta_path(out).read_text())
    assert meta["engine"] == "numba"
    assert meta["settings"] == json.loads(json.dumps(chexradi.load_settings(featureClass=FC).to_params()))
    assert meta["versions"] == chexradi.versions()
    assert meta["counts"] == {"total": 6, "ok": 6, "failed": 0, "resumed": 0}
    assert meta["failures"] == []


def test_bad_cases_are_recorded_and_batch_continues(tmp_path: Path) -> None:
    kinds = tuple(k for k, _ in BAD_KINDS)
    cases, rows = make_batch(tmp_path, n_good=3, bad=kinds)
    out = tmp_path / "features.csv"
    report = extract_batch(cases, out=out, featureClass=FC, progress=False)
    assert not report.ok
    assert (report.n_total, report.n_ok, report.n_failed) == (3 + len(kinds), 3, len(kinds))
    by_row = {f.row: f for f in report.failures}
    assert sorted(by_row) == list(range(4, 4 + len(kinds)))  # rows are 1-based case numbers
    for (kind, expected), row in zip(BAD_KINDS, range(4, 4 + len(kinds))):
        f = by_row[row]
        assert expected in f.reason, f"{kind}: {f.reason}"
        assert f.image == rows[row - 1]["Image"] and f.mask == rows[row - 1]["Mask"]
    # good cases computed, bad ones absent from the CSV but present in the meta file
    got = read_csv(out)
    assert [r["Patient"] for r in got] == ["P00", "P01", "P02"]
    meta = json.loads(meta_path(out).read_text())
    assert meta["counts"]["failed"] == len(kinds)
    assert [(m["row"], m["reason"]) for m in meta["failures"]] == [(f.row, f.reason) for f in report.failures]


def test_label_column_and_default_label(tmp_path: Path) -> None:
    image, mask = _image_and_mask(3)
    write_nrrd(tmp_path / "img.nrrd", image.astype(np.int16))
    two = mask.copy()
    two[15:20, 2:10] = 2
    write_nrrd(tmp_path / "two.nrrd", two)
    rows = [{"Image": "img.nrrd", "Mask": "two.nrrd", "Label": "1"},
            {"Image": "img.nrrd", "Mask": "two.nrrd", "Label": "2"},
            {"Image": "img.nrrd", "Mask": "two.nrrd", "Label": "3"}]
    cases = write_cases_csv(tmp_path / "cases.csv", rows)
    out = tmp_path / "f.csv"
    report = extract_batch(cases, out=out, featureClass={"firstorder": []}, progress=False)
    assert report.n_ok == 2 and [f.row for f in report.failures] == [3]
    assert "labels present: 1, 2" in report.failures[0].reason and report.failures[0].label == 3
    got = read_csv(out)
    for r, lab in zip(got, (1, 2)):
        ref = chexradi.extract(str(tmp_path / "img.nrrd"), str(tmp_path / "two.nrrd"), label=lab,
                               featureClass={"firstorder": []})
        assert float(r["original_firstorder_Mean"]) == ref["original_firstorder_Mean"]
    assert got[0]["original_firstorder_Mean"] != got[1]["original_firstorder_Mean"]


def test_list_of_dicts_and_json_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths of a list are read from the current directory
    rows = [{**good_case(tmp_path, i), "Patient": f"P{i}", "Weight": 70 + i} for i in range(3)]
    rows.append({**bad_case(tmp_path, "empty_mask"), "Patient": "B", "Weight": None})
    out = tmp_path / "features.json"
    report = extract_batch(rows, out=out, fmt="json", featureClass=FC, progress=False)
    assert (report.n_ok, report.n_failed) == (3, 1)
    doc = json.loads(out.read_text())  # strict JSON
    assert doc["metadata"]["counts"] == {"total": 4, "ok": 3, "failed": 1, "resumed": 0}
    assert doc["metadata"]["settings"]["featureClass"] == FC
    assert [r["Patient"] for r in doc["records"]] == ["P0", "P1", "P2"]
    assert [r["Weight"] for r in doc["records"]] == [70, 71, 72]  # carried values keep their JSON type
    for rec, row in zip(doc["records"], rows):
        ref = chexradi.extract(row["Image"], row["Mask"], featureClass=FC)
        assert {k: v for k, v in rec.items() if k.startswith("original_")} == \
            {k: (v if math.isfinite(v) else None) for k, v in ref.items()}
    assert json.loads(meta_path(out).read_text())["failures"][0]["row"] == 4


def test_relative_paths_resolved_from_csv_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    cases, _ = make_batch(data, n_good=2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    report = extract_batch(Path("..") / "data" / "cases.csv", out="f.csv", featureClass=FC, progress=False)
    assert report.ok and report.n_ok == 2 and (elsewhere / "f.csv").exists()


# ------------------------------------------------------------------------------------------
# resume
# ------------------------------------------------------------------------------------------
def test_resume_after_crash_truncated_journal(tmp_path: Path) -> None:
    cases, _ = make_batch(tmp_path, n_good=8)
    out = tmp_path / "features.csv"
    extract_batch(cases, out=out, featureClass=FC, progress=False)
    reference = out.read_bytes()
    lines = journal_path(out).read_bytes().splitlines(keepends=True)
    assert len(lines) == 1 + 8  # header + one line per case

    # simulate a crash after k=3 cases, in the middle of writing the 4th line, before the final CSV
    k = 3
    journal_path(out).write_bytes(b"".join(lines[:1 + k]) + lines[1 + k][:40])
    out.unlink()
    meta_path(out).unlink()
    report = extract_batch(cases, out=out, featureClass=FC, progress=False)
    assert (report.n_ok, report.n_skipped_resumed, report.n_failed) == (8, k, 0)
    assert out.read_bytes() == reference  # every case exactly once, same bytes as the uninterrupted run
    recs = [json.loads(x) for x in journal_path(out).read_text().splitlines()]  # the partial line was dropped
    assert recs[0]["type"] == "header" and len(recs) == 1 + 8
    assert len({r["key"] for r in recs[1:]}) == 8

    # a third run computes nothing and rewrites the same output
    report = extract_batch(cases, out=out, featureClass=FC, progress=False)
    assert report.n_skipped_resumed == 8 and out.read_bytes() == reference
    assert len(journal_path(out).read_text().splitlines()) == 1 + 8


def test_case_list_is_compact_and_old_journals_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A case's resume key is a 32-character digest of its identity (not the identity's whole JSON text), paths
    given absolute are held once, and repeated texts share one object. A journal from before, whose keys are
    the JSON text itself, still resumes every case."""
    cases, rows = make_batch(tmp_path, n_good=4)
    # absolute paths, each image used by two masks (the loop's layout)
    doubled = [{**r, "Image": str(tmp_path / r["Image"]), "Mask": str(tmp_path / m), "Site": "A"}
               for i, r in enumerate(rows) for m in (r["Mask"], rows[(i + 1) % len(rows)]["Mask"])]
    abs_cases = write_cases_csv(tmp_path / "abs.csv", doubled, ["Patient", "Image", "Mask", "Site"])
    loaded = load_cases(abs_cases)
    assert all(len(c.key) == 32 and int(c.key, 16) >= 0 for c in loaded)
    assert len({c.key for c in loaded}) == len(loaded)
    assert all(c.image is c.image_given and c.mask is c.mask_given for c in loaded)
    assert loaded[0].image is loaded[1].image and loaded[0].columns["Site"] is loaded[5].columns["Site"]
    assert all(c.columns["Image"] is c.image_given for c in loaded)

    out = tmp_path / "f.csv"
    extract_batch(cases, out=out, featureClass=FC, progress=False)
    reference = out.read_bytes()
    lines = journal_path(out).read_text().splitlines()
    old_keys = {}
    for c in load_cases(cases):  # the identity text the journal held before
        ident = {"Image": c.image, "Mask": c.mask, "Label": c.label, "Patient": c.columns["Patient"],
                 "Site": c.columns["Site"]}
        old_keys[c.key] = json.dumps(ident, sort_keys=True, ensure_ascii=False)
    legacy = [lines[0]] + [json.dumps({**json.loads(x), "key": old_keys[json.loads(x)["key"]]}) for x in lines[1:]]
    assert all(json.loads(x)["key"].startswith("{") for x in legacy[1:])
    journal_path(out).write_text("\n".join(legacy) + "\n")
    out.unlink()

    def no_work(*a: Any, **k: Any) -> None:
        raise AssertionError("a case was recomputed")

    monkeypatch.setattr("chexradi.radiomics.batch.process_case", no_work)
    report = extract_batch(cases, out=out, featureClass=FC, progress=False)
    assert report.n_skipped_resumed == 4 and out.read_bytes() == reference


def test_resume_retries_failed_and_picks_up_new_rows(tmp_path: Path) -> None:
    rows = [good_case(tmp_path, i) for i in range(3)]
    missing = tmp_path / rows[1]["Image"]
    kept = missing.read_bytes()
    missing.unlink()
    cases = write_cases_csv(tmp_path / "cases.csv", rows)
    out = tmp_path / "f.csv"
    r1 = extract_batch(cases, out=out, featureClass=FC, progress=False)
    assert (r1.n_ok, r1.n_failed) == (2, 1) and r1.failures[0].row == 2

    missing.write_bytes(kept)  # fixed; and one more case appended
    rows.append(good_case(tmp_path, 3))
    write_cases_csv(cases, rows)
    r2 = extract_batch(cases, out=out, featureClass=FC, progress=False)
    assert (r2.n_ok, r2.n_failed, r2.n_skipped_resumed) == (4, 0, 2)
    got = read_csv(out)
    assert [r["Image"] for r in got] == [r["Image"] for r in rows]
    for r in got:
        assert_row_matches_extract(r, tmp_path, featureClass=FC)


def test_changed_settings_or_engine_refused(tmp_path: Path) -> None:
    cases, _ = make_batch(tmp_path, n_good=2)
    out = tmp_path / "f.csv"
    extract_batch(cases, out=out, featureClass=FC, progress=False)
    before = journal_path(out).read_bytes()
    with pytest.raises(ValueError, match=r"binWidth: 25\.0 -> 10\.0.*new --out.*--no-resume"):
        extract_batch(cases, out=out, featureClass=FC, binWidth=10, progress=False)
    with pytest.raises(ValueError, match=r"featureClass"):
        extract_batch(cases, out=out, featureClass={"firstorder": []}, progress=False)
    with pytest.raises(ValueError, match=r"engine: 'numba' -> 'pyradiomics'"):
        extract_batch(cases, out=out, featureClass=FC, engine="pyradiomics", progress=False)
    assert journal_path(out).read_bytes() == before  # refused runs leave the journal alone

    # resume=False starts over with the new settings
    report = extract_batch(cases, out=out, featureClass=FC, binWidth=10, resume=False, progress=False)
    assert report.n_skipped_resumed == 0 and report.n_ok == 2
    for r in read_csv(out):
        assert_row_matches_extract(r, tmp_path, featureClass=FC, binWidth=10)
    assert json.loads(journal_path(out).read_text().splitlines()[0])["settings"]["setting"]["binWidth"] == 10.0


def test_damaged_journal_middle_line_refused(tmp_path: Path) -> None:
    cases, _ = make_batch(tmp_path, n_good=3)
    out = tmp_path / "f.csv"
    extract_batch(cases, out=out, featureClass=FC, progress=False)
    lines = journal_path(out).read_text().splitlines(keepends=True)
    lines[1] = "{not json\n"
    journal_path(out).write_text("".join(lines))
    with pytest.raises(ValueError, match=r"damaged at line 2.*--no-resume"):
        extract_batch(cases, out=out, featureClass=FC, progress=False)


def test_concurrent_batch_on_same_out_refused(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    cases, _ = make_batch(tmp_path, n_good=1)
    out = tmp_path / "f.csv"
    with open(journal_path(out), "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="another chexradi batch is writing"):
            extract_batch(cases, out=out, featureClass=FC, progress=False)


# ------------------------------------------------------------------------------------------
# validation before work
# ------------------------------------------------------------------------------------------
def test_validate_only_computes_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases, _ = make_batch(tmp_path, n_good=2, bad=("missing", "empty_mask", "nan_pixels"))
    calls: list[Any] = []
    real = chexradi.Extractor.execute
    monkeypatch.setattr(chexradi.Extractor, "execute", lambda self, *a, **k: calls.append(a) or real(self, *a, **k))
    out = tmp_path / "f.csv"
    report = extract_batch(cases, out=out, featureClass=FC, validate_only=True, progress=False)
    assert report.validate_only and calls == []
    assert (report.n_ok, report.n_failed) == (2, 3) and [f.row for f in report.failures] == [3, 4, 5]
    assert "NaN" in report.failures[2].reason
    assert not out.exists() and not journal_path(out).exists() and not meta_path(out).exists()
    assert report.out is None and report.meta_path is None
    # no output path needed
    assert extract_batch(cases, out=None, validate_only=True, featureClass=FC, progress=False).n_failed == 3


def test_invalid_settings_fail_before_any_case(tmp_path: Path) -> None:
    cases, _ = make_batch(tmp_path, n_good=1)
    out = tmp_path / "f.csv"
    with pytest.raises(ValueError, match=r"unknown setting.*binWidht.*valid settings:.*binWidth"):
        extract_batch(cases, out=out, binWidht=10)
    with pytest.raises(ValueError, match=r"binWidth=-1"):
        extract_batch(cases, out=out, binWidth=-1)
    with pytest.raises(ValueError, match=r"engine='gpu'"):
        extract_batch(cases, out=out, engine="gpu")
    with pytest.raises(ValueError, match=r"fmt='xlsx'"):
        extract_batch(cases, out=out, fmt="xlsx")
    with pytest.raises(ValueError, match=r"jobs=-1"):
        extract_batch(cases, out=out, jobs=-1)
    with pytest.raises(ValueError, match=r"out is required"):
        extract_batch(cases, out=None)
    assert not journal_path(out).exists()


def test_cases_file_errors(tmp_path: Path) -> None:
    good_case(tmp_path, 0)
    good_case(tmp_path, 1)
    p = tmp_path / "cases.csv"

    p.write_text("image,Mask\nimages/case0.nrrd,masks/case0.nrrd\n")
    with pytest.raises(ValueError, match=r"no 'Image' column \(column names are case-sensitive: rename 'image'\)"
                                         r"; columns found: image, Mask"):
        load_cases(p)
    p.write_text("")
    with pytest.raises(ValueError, match=r"is empty"):
        load_cases(p)
    p.write_text("Image,Mask\n")
    with pytest.raises(ValueError, match=r"no case rows"):
        load_cases(p)
    p.write_text("Image,Mask,Label\nimages/case0.nrrd,masks/case0.nrrd,one\n")
    with pytest.raises(ValueError, match=r"row 1: Label 'one' is not an integer > 0"):
        load_cases(p)
    p.write_text("Image,Mask\nimages/case0.nrrd,\n")
    with pytest.raises(ValueError, match=r"row 1: the Mask cell is empty"):
        load_cases(p)
    p.write_text("Image,Mask,original_firstorder_Mean\na,b,1\n")
    with pytest.raises(ValueError, match=r"collide with feature names"):
        load_cases(p)
    with pytest.raises(FileNotFoundError, match=r"cases file not found"):
        load_cases(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match=r"cases\[1\] \(row 2\) has no 'Mask'"):
        load_cases([{"Image": "a", "Mask": "b"}, {"Image": "c"}])


def test_duplicate_rows_named(tmp_path: Path) -> None:
    rows = [good_case(tmp_path, i) for i in range(3)]
    dup = [rows[0], rows[1], {"Image": "./" + rows[0]["Image"], "Mask": rows[0]["Mask"], "Label": "1"}, rows[2],
           {**rows[1], "Label": ""}]
    p = write_cases_csv(tmp_path / "cases.csv", dup, ["Image", "Mask", "Label"])
    with pytest.raises(ValueError, match=r"duplicate cases.*rows 1 and 3 .*rows 2 and 5 .*Remove the repeated rows"):
        load_cases(p)
    with pytest.raises(ValueError, match=r"duplicate"):
        extract_batch(p, out=tmp_path / "f.csv")
    assert not journal_path(tmp_path / "f.csv").exists()
    # the same image and mask with different labels is not a duplicate
    ok = [{**rows[0], "Label": "1"}, {**rows[0], "Label": "2"}]
    assert [c.label for c in load_cases(ok)] == [1, 2]


def test_unwritable_output(tmp_path: Path) -> None:
    cases, _ = make_batch(tmp_path, n_good=1)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"cannot create the folder of out="):
        extract_batch(cases, out=blocker / "sub" / "f.csv")
    with pytest.raises(ValueError, match=r"is a directory"):
        extract_batch(cases, out=tmp_path)
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            with pytest.raises(ValueError, match=r"not writable"):
                extract_batch(cases, out=ro / "f.csv")
        finally:
            ro.chmod(0o755)


def test_progress_bar_only_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases, _ = make_batch(tmp_path, n_good=2)
    extract_batch(cases, out=tmp_path / "a.csv", featureClass=FC)  # stderr is not a TTY here
    assert "case" not in capsys.readouterr().err
    extract_batch(cases, out=tmp_path / "b.csv", featureClass=FC, progress=True)
    assert "2/2" in capsys.readouterr().err


def test_progress_default_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one rule every stage's bar follows (batch, loop, training, heatmaps, reports): None means "when
    stderr is a terminal"; True/False as given; a stderr without isatty counts as no terminal."""
    import io
    import sys

    from chexradi._progress import progress_bar, progress_on

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    assert progress_on(None) and not progress_on(False)
    bar = progress_bar(None, total=3, desc="x", unit="case")
    bar.update(3)
    bar.close()
    assert "3/3" in sys.stderr.getvalue()
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not progress_on(None) and progress_on(True) and progress_bar(None, total=3) is None
    monkeypatch.setattr("sys.stderr", object())
    assert not progress_on(None)


def test_worker_cache_builds_one_extractor_per_process(tmp_path: Path) -> None:
    cases, rows = make_batch(tmp_path, n_good=2)
    import logging

    settings = chexradi.load_settings(featureClass=FC)
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    level = logging.getLogger("chexradi").level
    workers_mod._init_worker(settings, "numba", 1, logging.WARNING)
    try:
        first = workers_mod._worker_extractor()
        rec = workers_mod._worker_task(str(tmp_path / rows[0]["Image"]), str(tmp_path / rows[0]["Mask"]), None,
                                       "extract")
        assert workers_mod._worker_extractor() is first
        assert rec["status"] == "ok"
        assert rec["features"] == chexradi.extract(str(tmp_path / rows[0]["Image"]), str(tmp_path / rows[0]["Mask"]),
                                                   featureClass=FC)
    finally:
        workers_mod._WORKER.clear()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        logging.getLogger("chexradi").setLevel(level)


def test_feature_columns_stable_for_mixed_2d_3d(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    vol = rng.normal(100, 30, (5, 14, 15)).round().astype(np.int16)
    m3 = np.zeros(vol.shape, np.uint8)
    m3[1:4, 3:10, 4:11] = 1
    write_nrrd(tmp_path / "vol.nrrd", vol, spacing=(2.0, 0.7, 0.7))
    write_nrrd(tmp_path / "vol_mask.nrrd", m3, spacing=(2.0, 0.7, 0.7))
    c2 = good_case(tmp_path, 0)
    c3 = {"Image": "vol.nrrd", "Mask": "vol_mask.nrrd"}
    fc = {"firstorder": ["Mean"], "shape": ["VoxelVolume"], "shape2D": ["PixelSurface"]}
    headers = []
    for order in ([c2, c3], [c3, c2]):
        out = tmp_path / f"f{len(headers)}.csv"
        extract_batch(write_cases_csv(tmp_path / "cases.csv", order), out=out, featureClass=fc, progress=False)
        got = read_csv(out)
        headers.append(list(got[0]))
        two_d = next(r for r in got if r["Image"] == c2["Image"])
        assert two_d["original_shape_VoxelVolume"] == "" and two_d["original_shape2D_PixelSurface"] != ""
    assert headers[0] == headers[1] == ["Image", "Mask", "original_shape_VoxelVolume", "original_shape2D_PixelSurface",
                                        "original_firstorder_Mean"]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_values_beyond_the_held_limit_are_read_back_from_the_journal(tmp_path: Path, monkeypatch, fmt) -> None:
    """The driver keeps the values of at most _HELD_RESULTS cases in memory and reads the others back from the
    journal at the end: the output is the same whether 0, 3 or all values were held, and a resumed batch
    (every value read back) writes it again."""
    from chexradi.radiomics import batch

    cases, _ = make_batch(tmp_path, n_good=7, bad=("missing",))
    ref = extract_batch(cases, out=tmp_path / f"ref.{fmt}", featureClass=FC, fmt=fmt)
    assert ref.n_ok == 7

    def same(path: Path) -> bool:  # CSV: every byte; JSON: the records (its metadata names the file and times)
        if fmt == "csv":
            return path.read_bytes() == (tmp_path / "ref.csv").read_bytes()
        return json.loads(path.read_text())["records"] == json.loads((tmp_path / "ref.json").read_text())["records"]

    reads: list[int] = []
    real = Journal.read_features

    def counted(self, offset):
        reads.append(offset)
        return real(self, offset)

    monkeypatch.setattr(Journal, "read_features", counted)
    for held in (0, 3):
        monkeypatch.setattr(batch, "_HELD_RESULTS", held)
        reads.clear()
        rep = extract_batch(cases, out=tmp_path / f"h{held}.{fmt}", featureClass=FC, fmt=fmt)
        assert (rep.n_ok, rep.n_failed) == (7, 1)
        assert len(reads) == 7 - held and len(set(reads)) == len(reads)
        assert same(tmp_path / f"h{held}.{fmt}")
    reads.clear()
    monkeypatch.setattr(batch, "_HELD_RESULTS", 10_000)
    # resumes: the 7 ok cases come from the journal, the missing one is retried
    rep = extract_batch(cases, out=tmp_path / f"h3.{fmt}", featureClass=FC, fmt=fmt)
    assert rep.n_skipped_resumed == 7 and len(reads) == 7
    assert same(tmp_path / f"h3.{fmt}")


def test_journal_index_points_at_each_cases_last_ok_line(tmp_path: Path) -> None:
    """A resumed journal keeps, per case, the offset of its last ok line (a case done twice, e.g. after
    --no-resume was not used and the journal was appended to, reads its latest values)."""
    cases, rows = make_batch(tmp_path, n_good=3)
    extract_batch(cases, out=tmp_path / "o.csv", featureClass=FC)
    jp = journal_path(tmp_path / "o.csv")
    lines = jp.read_bytes().splitlines(keepends=True)
    last = json.loads(lines[-1])
    changed = dict(last, features={k: -1.0 for k in last["features"]})
    jp.write_bytes(b"".join(lines) + (json.dumps(changed) + "\n").encode())
    header = json.loads(lines[0])
    j = Journal(jp, header, resume=True)
    try:
        assert set(j.done) == {json.loads(line)["key"] for line in lines[1:]}
        offset, names = j.done[last["key"]]
        assert offset == sum(len(line) for line in lines)  # the appended line, not the first one
        assert names == tuple(last["features"]) and j.read_features(offset) == changed["features"]
        for line in lines[1:-1]:
            rec = json.loads(line)
            assert j.read_features(j.done[rec["key"]][0]) == rec["features"]
        assert len({id(n) for _, n in j.done.values()}) == 1  # one shared tuple of names
    finally:
        j.close()


def test_csv_cells_are_what_the_csv_module_writes() -> None:
    """workers.csv_cells turns values into the text csv.writer would write for them (quoting left to it)."""
    import io

    values = {"f": 0.1 + 0.2, "tiny": 5e-324, "neg0": -0.0, "big": 1e300, "nan": float("nan"), "inf": float("inf"),
              "none": None, "np": np.float64(1 / 3), "np32": np.float32(0.1), "int": 7, "bool": True,
              "text": 'a,"b"\nc'}

    def line(cells) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(cells)
        return buf.getvalue()

    cells = workers_mod.csv_cells(values)  # a cell holds a comma: kept apart
    assert isinstance(cells, tuple) and all(isinstance(c, str) for c in cells)
    assert line(cells) == line(list(values.values()))
    assert cells[:3] == (repr(0.1 + 0.2), "5e-324", "-0.0")
    del values["text"]
    joined = workers_mod.csv_cells(values)  # numbers only: one string
    assert isinstance(joined, str) and joined.startswith(repr(0.1 + 0.2) + ",5e-324,-0.0,1e+300,nan,inf,,")
    assert line(workers_mod.split_cells(joined)) == line(list(values.values()))
    assert workers_mod.csv_cells({"one": None}) == "" and workers_mod.split_cells("") == [""]
    assert workers_mod.csv_cells({}) == ()


def test_write_csv_rows_are_what_the_csv_module_writes(tmp_path: Path) -> None:
    """write_csv writes joined cells as they are when they need no quotes; every row is the csv module's."""
    from types import SimpleNamespace

    rng = np.random.default_rng(11)
    carried = ["Image", "Mask", "note"]
    features = ["f1", "f2", "f3"]
    texts = ["/d/a.nrrd", "b c.nrrd", 'q"uote', "com,ma", "new\nline", "cr\rx", "", None, "é", 5, " lead"]
    values = [0.5, -0.0, 1e-300, float("nan"), float("inf"), None, "", 'x"y', "l\nm", "r\rs", "a,b", 7, "z"]
    rows, expected = [], []
    for _ in range(400):
        cols = {c: texts[int(rng.integers(len(texts)))] for c in carried}
        vals = {f: values[int(rng.integers(len(values)))] for f in features}
        cells = workers_mod.csv_cells(vals)
        names = tuple(features) if rng.random() < 0.8 else ("f2", "f1", "f3")
        if names != tuple(features):
            cells = workers_mod.csv_cells({f: vals[f] for f in names})
        rows.append((SimpleNamespace(columns=cols), names, cells))
        expected.append([cols[c] for c in carried] + [vals[f] for f in features])
    write_csv(tmp_path / "out.csv", carried, features, rows)
    ref = tmp_path / "ref.csv"
    with open(ref, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(carried + features)
        w.writerows([[("" if v is None else str(v)) if k >= len(carried) else v for k, v in enumerate(r)]
                     for r in expected])
    assert (tmp_path / "out.csv").read_bytes() == ref.read_bytes()
    assert sum(isinstance(c, str) for _, _, c in rows) > 100  # the joined form was exercised


def test_journal_lines_joined_from_worker_text_are_byte_identical(tmp_path: Path) -> None:
    header = {"type": "header", "kind": JOURNAL_KIND, "engine": "numba", "settings": {}, "versions": {}}
    head = {"type": "case", "key": "k\u00e9", "row": 3, "image": "/d/é.nrrd", "mask": "/d/m.nrrd", "label": None}
    recs = [{"status": "ok", "features": {"x": 1.5, "y": float("nan")}, "seconds": 0.25},
            {"status": "failed", "reason": "ünreadable", "traceback": "T"},
            {"status": "ok", "label": 2}]  # shares a key with head: encoded whole, rec's label wins
    j = Journal(tmp_path / "j.jsonl", header, resume=False)
    try:
        for rec in recs:
            j.append_case(head, rec, workers_mod.record_json(rec))
            j.append_case(head, rec)
    finally:
        j.close()
    lines = (tmp_path / "j.jsonl").read_text(encoding="utf-8").splitlines()[1:]
    assert len(lines) == 6
    for i, rec in enumerate(recs):
        expected = json.dumps({**head, **rec}, ensure_ascii=False, default=str)
        assert lines[2 * i] == lines[2 * i + 1] == expected
    assert json.loads(lines[4])["label"] == 2


def test_csv_cells_placed_by_name_when_a_case_has_other_features(tmp_path: Path) -> None:
    c1, c2 = (Case(row=i, image=f"i{i}", mask=f"m{i}", label=None, key=f"k{i}", image_given=f"i{i}",
                   mask_given=f"m{i}", columns={"ID": f"P{i}"}) for i in (1, 2))
    features = ["a", "b", "c"]
    rows = [(c1, ("a", "b", "c"), "1.0,2.0,3.0"), (c2, ("c", "a"), ("30.0", "10.0"))]
    write_csv(tmp_path / "o.csv", ["ID"], features, rows)
    assert (tmp_path / "o.csv").read_text() == "ID,a,b,c\nP1,1.0,2.0,3.0\nP2,10.0,,30.0\n"
