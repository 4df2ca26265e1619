"""Datasets: ChestX-ray14 folder parsing, splits, boxes, cache, errors; generic CSV (phantom); CheXpert; MIMIC-CXR."""
from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared
from PIL import Image

from chexradi.data import cxr_dataset
from chexradi.data import datasets as ds
from chexradi.data.datasets import (BOXED_CLASSES, CHESTXRAY14_CLASSES, CHEXPERT_CLASSES, MIMIC_CXR_CLASSES,
                                    CXRDataset, Record, chestxray14, chexpert, csv_dataset, mimic_cxr)
from chexradi.data.readers import read_radiograph
from chexradi.data.transforms import to_model_input

SIZE = 32

# image -> (patient, findings); patients 5 and 6 form the test list
ENTRIES = {
    "00000001_000.png": (1, "Cardiomegaly"),
    "00000001_001.png": (1, "Cardiomegaly|Effusion"),
    "00000002_000.png": (2, "No Finding"),
    "00000002_001.png": (2, "Infiltration|Mass"),
    "00000003_000.png": (3, "Nodule"),
    "00000003_001.png": (3, "No Finding"),
    "00000004_000.png": (4, "Hernia"),
    "00000004_001.png": (4, "Pleural_Thickening|Atelectasis"),
    "00000005_000.png": (5, "Pneumothorax"),
    "00000005_001.png": (5, "No Finding"),
    "00000006_000.png": (6, "Infiltration"),
    "00000006_001.png": (6, "Emphysema|Fibrosis"),
}
TEST_IDS = [k for k, (p, _) in ENTRIES.items() if p >= 5]
TRAIN_VAL_IDS = [k for k, (p, _) in ENTRIES.items() if p < 5]
# the real header, bracketed names and trailing empty columns included
DATA_ENTRY_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                     "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
BBOX_ROWS = [
    "00000002_001.png,Infiltrate,100.5,200.25,300,400,,,",
    "00000002_001.png,Mass,512,256,64,32,,,",
    "00000006_000.png,Infiltrate,0,0,1024,512,,,",
    "00000006_000.png,Infiltrate,10,20,30,40,,,",
]


def _write_png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(path)


def _expected(findings: str) -> np.ndarray:
    y = np.zeros(len(CHESTXRAY14_CLASSES), np.float32)
    for f in findings.split("|"):
        if f != "No Finding":
            y[CHESTXRAY14_CLASSES.index(f)] = 1
    return y


@pytest.fixture
def cxr14(tmp_path: Path) -> Path:
    root = tmp_path / "cxr14"
    lines = [DATA_ENTRY_HEADER]
    for i, (name, (patient, findings)) in enumerate(ENTRIES.items()):
        # half the images in images/, half as distributed in images_001/images/
        folder = root / "images" if i % 2 == 0 else root / "images_001" / "images"
        _write_png(folder / name, i)
        lines.append(f"{name},{findings},{i % 2},{patient},{40 + i},M,PA,2500,2048,0.168,0.168")
    (root / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "BBox_List_2017.csv").write_text("\n".join([BBOX_HEADER, *BBOX_ROWS]) + "\n", encoding="utf-8")
    (root / "train_val_list.txt").write_text("\n".join(TRAIN_VAL_IDS) + "\n", encoding="utf-8")
    (root / "test_list.txt").write_text("\n".join(TEST_IDS) + "\n", encoding="utf-8")
    return root


def _all_records(splits: ds.Splits) -> dict[str, Record]:
    return {r.image_id: r for d in splits if d is not None for r in d.records}


def test_constants():
    assert len(CHESTXRAY14_CLASSES) == 14 and CHESTXRAY14_CLASSES[3] == "Infiltration"
    assert CHESTXRAY14_CLASSES[-1] == "Hernia" and CHESTXRAY14_CLASSES[12] == "Pleural_Thickening"
    assert len(BOXED_CLASSES) == 8 and set(BOXED_CLASSES) <= set(CHESTXRAY14_CLASSES)
    assert ds.BBOX_ALIASES == {"Infiltrate": "Infiltration"}


def test_chestxray14_labels_boxes_and_splits(cxr14: Path):
    s = chestxray14(cxr14, size=SIZE, val_fraction=0.25, seed=0)
    assert s.class_names == CHESTXRAY14_CLASSES
    recs = _all_records(s)
    assert set(recs) == set(ENTRIES)
    for name, (patient, findings) in ENTRIES.items():
        np.testing.assert_array_equal(recs[name].labels, _expected(findings), err_msg=name)
        assert recs[name].patient == str(patient)
        assert recs[name].path.is_file()
    assert recs["00000002_000.png"].labels.sum() == 0  # No Finding = all zeros
    assert recs["00000001_001.png"].labels.sum() == 2  # multi-label
    # boxes: alias mapped, several per class kept, original coordinates
    assert recs["00000002_001.png"].boxes == {"Infiltration": [(100.5, 200.25, 300.0, 400.0)],
                                              "Mass": [(512.0, 256.0, 64.0, 32.0)]}
    assert recs["00000006_000.png"].boxes == {"Infiltration": [(0.0, 0.0, 1024.0, 512.0), (10.0, 20.0, 30.0, 40.0)]}
    assert recs["00000003_000.png"].boxes == {}
    # test split = test_list; train/val = train_val_list, patient-disjoint
    assert sorted(r.image_id for r in s.test.records) == sorted(TEST_IDS)
    train_p = {r.patient for r in s.train.records}
    val_p = {r.patient for r in s.val.records}
    assert train_p and val_p and not train_p & val_p
    assert train_p | val_p == {"1", "2", "3", "4"} and len(val_p) == 1
    # deterministic for a seed; the draw covers more than one outcome over seeds
    again = chestxray14(cxr14, size=SIZE, val_fraction=0.25, seed=0)
    assert [r.image_id for r in again.val.records] == [r.image_id for r in s.val.records]
    draws = {frozenset(r.patient for r in chestxray14(cxr14, size=SIZE, val_fraction=0.25, seed=k).val.records)
             for k in range(6)}
    assert len(draws) > 1


def test_boxes_at_scales_from_1024_frame(cxr14: Path):
    s = chestxray14(cxr14, size=SIZE, val_fraction=0.0)
    assert s.val is None
    i = [r.image_id for r in s.train.records].index("00000002_001.png")
    # image files are 64x64, but ChestX-ray14 boxes are in the 1024 frame
    assert s.train.boxes_at(i, 256) == {"Infiltration": [(25.125, 50.0625, 75.0, 100.0)],
                                        "Mass": [(128.0, 64.0, 16.0, 8.0)]}
    assert s.train.boxes_at(i)["Mass"] == [(16.0, 8.0, 2.0, 1.0)]


def test_items_equal_reader_plus_transform(cxr14: Path):
    s = chestxray14(cxr14, size=SIZE, val_fraction=0.0)
    d = s.test
    for i in range(len(d)):
        item = d[i]
        assert set(item) == {"image", "target", "index"} and item["index"] == i
        assert item["image"].dtype == torch.float32 and tuple(item["image"].shape) == (1, SIZE, SIZE)
        expected = to_model_input(read_radiograph(d.records[i].path)[0], size=SIZE)
        np.testing.assert_array_equal(item["image"].numpy(), expected)
        np.testing.assert_array_equal(item["target"].numpy(), d.records[i].labels)
    assert d.targets.shape == (len(d), 14)
    batch = next(iter(torch.utils.data.DataLoader(d, batch_size=4)))
    assert tuple(batch["image"].shape) == (4, 1, SIZE, SIZE) and tuple(batch["target"].shape) == (4, 14)


def test_cache_hit_on_second_pass(cxr14: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls: list[Path] = []
    real = cxr_dataset.read_radiograph

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(cxr_dataset, "read_radiograph", counting)
    cache = tmp_path / "cache"
    d = chestxray14(cxr14, size=SIZE, cache_dir=cache).test
    first = [d[i]["image"].numpy() for i in range(len(d))]
    assert len(calls) == len(d)
    assert len(list(cache.glob("*.npy"))) == len(d) and not list(cache.glob(".*tmp*"))
    second = [d[i]["image"].numpy() for i in range(len(d))]
    assert len(calls) == len(d)  # no decoding on the second epoch
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # another dataset object on the same cache reuses it; another size does not
    d2 = chestxray14(cxr14, size=SIZE, cache_dir=cache).test
    d2[0]
    assert len(calls) == len(d)
    chestxray14(cxr14, size=SIZE + 8, cache_dir=cache).test[0]
    assert len(calls) == len(d) + 1
    # an edited file (new mtime) is decoded again
    p = d.records[1].path
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    d[1]
    assert calls[-1] == p and len(calls) == len(d) + 2
    # a corrupt cache file is ignored and rewritten
    for f in cache.glob("*.npy"):
        f.write_bytes(b"junk")
    np.testing.assert_array_equal(d[0]["image"].numpy(), first[0])
    assert len(calls) == len(d) + 3


def test_float16_cache_is_consistent(cxr14: Path, tmp_path: Path):
    d = CXRDataset(chestxray14(cxr14, size=SIZE).test.records, CHESTXRAY14_CLASSES, size=SIZE,
                   cache_dir=tmp_path / "c16", cache_dtype="float16")
    a, b = d[0]["image"], d[0]["image"]
    assert a.dtype == torch.float32 and torch.equal(a, b)
    exact = to_model_input(read_radiograph(d.records[0].path)[0], size=SIZE)
    np.testing.assert_allclose(a.numpy(), exact, atol=5e-3)
    assert np.load(next((tmp_path / "c16").glob("*.npy"))).dtype == np.float16


def test_missing_image_fail_and_skip(cxr14: Path, caplog: pytest.LogCaptureFixture):
    gone = cxr14 / "images_001" / "images" / "00000005_001.png"
    gone.unlink()
    with pytest.raises(FileNotFoundError, match="00000005_001.png"):
        chestxray14(cxr14, size=SIZE, on_error="fail")
    with caplog.at_level(logging.WARNING, logger="chexradi.data.datasets"):
        s = chestxray14(cxr14, size=SIZE, on_error="skip")
    assert sorted(r.image_id for r in s.test.records) == sorted(set(TEST_IDS) - {gone.name})
    assert s.test.skipped == 1 and "skipping 1 of 4" in caplog.text
    with pytest.raises(ValueError, match="on_error"):
        chestxray14(cxr14, on_error="ignore")


def test_validate_finds_unreadable_file(cxr14: Path):
    s = chestxray14(cxr14, size=SIZE, val_fraction=0.0)
    assert s.test.validate() == (True, [])
    bad = s.test.records[2].path
    bad.write_bytes(b"not a png")
    ok, problems = s.test.validate()
    assert not ok and [p for p, _ in problems] == [bad]
    with pytest.raises(ValueError, match=bad.name):
        s.test[2]


def test_unknown_label_and_missing_files(cxr14: Path):
    entry = cxr14 / "Data_Entry_2017.csv"
    text = entry.read_text(encoding="utf-8")
    entry.write_text(text.replace("Nodule", "Pneumonitis"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"'Pneumonitis'.*Atelectasis, Cardiomegaly"):
        chestxray14(cxr14)
    entry.unlink()
    with pytest.raises(FileNotFoundError, match=r"Data_Entry_2017\.csv.*train_val_list\.txt.*images"):
        chestxray14(cxr14)
    with pytest.raises(FileNotFoundError, match="not found"):
        chestxray14(cxr14 / "nowhere")
    bbox = cxr14 / "BBox_List_2017.csv"
    bbox.write_text(BBOX_HEADER + "\n00000001_000.png,Hernia,1,2,3,4,,,\n", encoding="utf-8")
    entry.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="unknown box label 'Hernia'"):
        chestxray14(cxr14)


def test_csv_dataset_reads_phantom(tmp_path: Path):
    from chexradi.data.phantom import generate, write_phantom

    out = tmp_path / "ph"
    write_phantom(out, 12, size=64)
    truth = generate(12, size=64)
    s = csv_dataset(out / "labels.csv", boxes_csv=out / "boxes.csv", size=SIZE)
    assert s.class_names == truth.class_names and s.val is None and s.test is None
    d = s.train
    assert len(d) == 12
    np.testing.assert_array_equal(d.targets, truth.labels)
    for i, rec in enumerate(d.records):
        assert rec.path == out / "images" / truth.image_names[i]
        assert rec.boxes == {c: [tuple(float(v) for v in b)] for c, b in truth.boxes[i].items()}
    i = next(i for i, b in enumerate(truth.boxes) if b)
    c, (x, y, w, h) = next(iter(truth.boxes[i].items()))
    assert d.boxes_at(i, 32)[c] == [(x / 2, y / 2, w / 2, h / 2)]
    item = d[0]
    np.testing.assert_array_equal(item["image"].numpy(), to_model_input(read_radiograph(d.records[0].path)[0],
                                                                        size=SIZE))


def test_csv_dataset_codes_splits_and_findings(tmp_path: Path):
    for i in range(6):
        _write_png(tmp_path / "img" / f"{i}.png", i)
    (tmp_path / "t.csv").write_text(
        "path,split,pid,Age,A,B\n"
        "img/0.png,train,p0,61,1,-1\n"
        "img/1.png,train,p1,62,0,\n"
        "img/2.png,valid,p2,63,-1,1\n"
        "img/3.png,test,p3,64,1,0\n", encoding="utf-8")
    nan = np.nan
    want = {"nan": [[1, nan], [0, nan], [nan, 1], [1, 0]], "zero": [[1, 0], [0, nan], [0, 1], [1, 0]],
            "one": [[1, 1], [0, nan], [1, 1], [1, 0]]}
    for policy, rows in want.items():
        s = csv_dataset(tmp_path / "t.csv", split_col="split", patient_col="pid", size=SIZE, uncertain=policy)
        assert s.class_names == ("A", "B")  # Age is not a 0/1/-1 column
        got = np.concatenate([s.train.targets, s.val.targets, s.test.targets])
        np.testing.assert_array_equal(got, np.array(rows, np.float32), err_msg=policy)
        assert [r.patient for r in s.train.records] == ["p0", "p1"]
    s = csv_dataset(tmp_path / "t.csv", split_col="split", size=SIZE, blank="zero")
    assert s.train.targets[1, 1] == 0
    with pytest.raises(ValueError, match="uncertain"):
        csv_dataset(tmp_path / "t.csv", uncertain="maybe")
    # labels from 'Finding Labels' only; val carved by patient
    (tmp_path / "f.csv").write_text(
        "Image Index,Finding Labels,Patient ID\n"
        + "".join(f"img/{i}.png,{f},{i // 2}\n" for i, f in
                  enumerate(["Mass", "No Finding", "Mass|Nodule", "Nodule", "No Finding", "Mass"])),
        encoding="utf-8")
    s = csv_dataset(tmp_path / "f.csv", patient_col="Patient ID", size=SIZE, val_fraction=0.34, seed=1)
    assert s.class_names == CHESTXRAY14_CLASSES
    allr = s.train.records + s.val.records
    assert len(allr) == 6 and {r.patient for r in s.train.records}.isdisjoint(r.patient for r in s.val.records)
    y = {r.image_id: r.labels for r in allr}
    assert y["img/2.png"][CHESTXRAY14_CLASSES.index("Nodule")] == 1 and y["img/1.png"].sum() == 0
    s = csv_dataset(tmp_path / "f.csv", size=SIZE, class_names=["Nodule", "Mass"])
    np.testing.assert_array_equal(s.train.targets[2], [1, 1])
    with pytest.raises(ValueError, match=r"unknown label 'Mass'.*Nodule"):
        csv_dataset(tmp_path / "f.csv", size=SIZE, class_names=["Nodule"])
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        csv_dataset(tmp_path / "nope.csv")


def test_chexpert(tmp_path: Path):
    root = tmp_path / "CheXpert-v1.0-small"
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_CLASSES)
    rows = []
    for k, (split, pat, view) in enumerate([("train", 1, "frontal"), ("train", 1, "lateral"), ("train", 2, "frontal"),
                                            ("train", 3, "frontal"), ("valid", 9, "frontal")]):
        rel = f"CheXpert-v1.0-small/{split}/patient{pat:05d}/study1/view{k}_{view}.jpg"
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (64, 64), dtype=np.uint8)).save(p)
        codes = ["1.0" if k == 0 else "", "-1.0", "0.0"] + [""] * 11
        rows.append((split, f"{rel},Male,50,{view.capitalize()},PA," + ",".join(codes)))
    (root / "train.csv").write_text("\n".join([header] + [r for s, r in rows if s == "train"]) + "\n")
    (root / "valid.csv").write_text("\n".join([header] + [r for s, r in rows if s == "valid"]) + "\n")
    s = chexpert(root, size=SIZE, val_fraction=0.34, seed=0)
    assert s.class_names == CHEXPERT_CLASSES and len(s.test) == 1
    assert len(s.train) + len(s.val) == 4
    assert {r.patient for r in s.train.records}.isdisjoint(r.patient for r in s.val.records)
    t = s.test.targets[0]
    assert t[0] == 0 and np.isnan(t[1]) and t[2] == 0  # blank -> 0, -1 -> NaN (U-Ignore)
    assert chexpert(root, size=SIZE, uncertain="one").test.targets[0, 1] == 1
    assert np.isnan(chexpert(root, size=SIZE, blank="nan").test.targets[0, 0])
    front = chexpert(root, size=SIZE, frontal_only=True, val_fraction=0.0)
    assert len(front.train) == 3
    assert tuple(s.test[0]["image"].shape) == (1, SIZE, SIZE)
    with pytest.raises(FileNotFoundError, match="train.csv"):
        chexpert(tmp_path / "empty")


def test_real_chestxray14_image_through_csv(tmp_path: Path):
    png = shared("real-cxr", "00000001_000.png")  # 512x512 8-bit NIH image, label Cardiomegaly
    (tmp_path / "t.csv").write_text(f"Image Index,Finding Labels,Patient ID\n{png},Cardiomegaly,1\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text(f"image,class,x,y,w,h\n{png},Cardiomegaly,128,256,64,32\n", encoding="utf-8")
    d = csv_dataset(tmp_path / "t.csv", boxes_csv=tmp_path / "b.csv", size=SIZE).train
    assert d.validate() == (True, []) and d.records[0].meta["shape"] == (512, 512)
    np.testing.assert_array_equal(d.targets[0], _expected("Cardiomegaly"))
    assert d.boxes_at(0, 256) == {"Cardiomegaly": [(64.0, 128.0, 32.0, 16.0)]}
    np.testing.assert_array_equal(d[0]["image"].numpy(), to_model_input(read_radiograph(png)[0], size=SIZE))


# MIMIC-CXR-JPG: dicom_id -> (subject, study, split, ViewPosition); three patients, one per official split
MIMIC_IMAGES = {
    "d1": ("10000032", "50000001", "train", "PA"),
    "d2": ("10000032", "50000001", "train", "LATERAL"),
    "d3": ("10000032", "50000002", "train", "AP"),
    "d4": ("10000032", "50000009", "train", "PA"),  # study 50000009 has no label row
    "d5": ("11000011", "51000001", "validate", "PA"),
    "d6": ("12000022", "52000001", "test", "AP"),
    "d7": ("12000022", "52000001", "test", ""),  # no ViewPosition
    "d8": ("12000022", "52000002", "test", "PA"),
}
# study -> {observation: code}; every other observation blank. CheXpert and NegBio labelers disagree on 50000001.
MIMIC_LABELS = {
    "chexpert": {"50000001": {"Atelectasis": "1.0", "Cardiomegaly": "-1.0", "Edema": "0.0"},
                 "50000002": {"No Finding": "1.0"},
                 "51000001": {"Pleural Effusion": "1.0", "Support Devices": "-1.0"},
                 "52000001": {"Pneumothorax": "1.0", "Edema": "-1.0"},
                 "52000002": {"Lung Opacity": "0.0"}},
    "negbio": {"50000001": {"Atelectasis": "0.0", "Cardiomegaly": "1.0"},
               "50000002": {"No Finding": "1.0"},
               "51000001": {"Pleural Effusion": "1.0"},
               "52000001": {"Pneumothorax": "-1.0"},
               "52000002": {"Lung Opacity": "1.0"}},
}
MIMIC_META_HEADER = ("dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,"
                     "StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
                     "PatientOrientationCodeSequence_CodeMeaning")


def _write_gz(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        fh.write("\n".join(lines) + "\n")


def _mimic_path(root: Path, dicom: str) -> Path:
    subject, study, _, _ = MIMIC_IMAGES[dicom]
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg"


def _mimic_expected(labeler: str, study: str, uncertain: str = "nan", blank: str = "zero") -> np.ndarray:
    codes = MIMIC_LABELS[labeler][study]
    to = {"1.0": 1.0, "0.0": 0.0, "-1.0": {"nan": np.nan, "zero": 0.0, "one": 1.0}[uncertain]}
    return np.array([to[codes[c]] if c in codes else (0.0 if blank == "zero" else np.nan) for c in MIMIC_CXR_CLASSES],
                    np.float32)


@pytest.fixture
def mimic(tmp_path: Path) -> Path:
    root = tmp_path / "mimic-cxr-jpg" / "2.1.0"
    root.mkdir(parents=True)
    split, meta = ["dicom_id,study_id,subject_id,split"], [MIMIC_META_HEADER]
    for k, (dicom, (subject, study, part, view)) in enumerate(MIMIC_IMAGES.items()):
        p = _mimic_path(root, dicom)
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(k).integers(0, 256, (48, 40), dtype=np.uint8)).save(p, quality=90)
        split.append(f"{dicom},{study},{subject},{part}")
        meta.append(f"{dicom},{subject},{study},CHEST (PA AND LAT),{view},48,40,21800506,213014.531,"
                    f"CHEST (PA AND LAT),postero-anterior,Erect")
    _write_gz(root / "mimic-cxr-2.0.0-split.csv.gz", split)
    _write_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", meta)
    for labeler, by_study in MIMIC_LABELS.items():
        rows = ["subject_id,study_id," + ",".join(MIMIC_CXR_CLASSES)]
        for study, codes in by_study.items():
            subject = next(v[0] for v in MIMIC_IMAGES.values() if v[1] == study)
            rows.append(f"{subject},{study}," + ",".join(codes.get(c, "") for c in MIMIC_CXR_CLASSES))
        _write_gz(root / f"mimic-cxr-2.0.0-{labeler}.csv.gz", rows)
    return root


def _ids(d) -> list[str]:
    return [] if d is None else [r.image_id for r in d.records]


def test_mimic_cxr_splits_labels_and_paths(mimic: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="chexradi.data.datasets"):
        s = mimic_cxr(mimic, size=SIZE)
    assert s.class_names == MIMIC_CXR_CLASSES and MIMIC_CXR_CLASSES[0] == "Atelectasis" and len(MIMIC_CXR_CLASSES) == 14
    # frontal only by default (d2 LATERAL and d7 without a view dropped); d4's study has no labels
    assert (_ids(s.train), _ids(s.val), _ids(s.test)) == (["d1", "d3"], ["d5"], ["d6", "d8"])
    assert "1 image(s) of mimic-cxr-2.0.0-split.csv.gz belong to a study with no row" in caplog.text
    assert "d4" in caplog.text
    assert [{r.patient for r in d.records} for d in s] == [{"10000032"}, {"11000011"}, {"12000022"}]
    for d in s:
        for r in d.records:
            subject, study, _, view = MIMIC_IMAGES[r.image_id]
            assert r.path == _mimic_path(mimic, r.image_id) and r.path.is_file()
            assert r.meta == {"dicom_id": r.image_id, "study_id": study, "view": view}
            np.testing.assert_array_equal(r.labels, _mimic_expected("chexpert", study), err_msg=r.image_id)
    # labels are per study: the spot values behind the expectations
    a = {c: j for j, c in enumerate(MIMIC_CXR_CLASSES)}
    t = s.train.targets
    assert t[0, a["Atelectasis"]] == 1 and np.isnan(t[0, a["Cardiomegaly"]]) and t[0, a["Consolidation"]] == 0
    assert t[1, a["No Finding"]] == 1 and t[1].sum() == 1
    # items load through the reader + transform
    item = s.test[1]
    assert tuple(item["image"].shape) == (1, SIZE, SIZE) and item["image"].dtype == torch.float32
    np.testing.assert_array_equal(item["image"].numpy(),
                                  to_model_input(read_radiograph(_mimic_path(mimic, "d8"))[0], size=SIZE))
    np.testing.assert_array_equal(item["target"].numpy(), _mimic_expected("chexpert", "52000002"))


def test_mimic_cxr_label_policies_labeler_and_classes(mimic: Path):
    for uncertain in ("nan", "zero", "one"):
        for blank in ("zero", "nan"):
            s = mimic_cxr(mimic, size=SIZE, uncertain=uncertain, blank=blank)
            for d in s:
                for r in d.records:
                    np.testing.assert_array_equal(
                        r.labels, _mimic_expected("chexpert", r.meta["study_id"], uncertain, blank),
                        err_msg=f"{uncertain}/{blank}/{r.image_id}")
    a = {c: j for j, c in enumerate(MIMIC_CXR_CLASSES)}
    one = mimic_cxr(mimic, size=SIZE, uncertain="one").train.targets[0]
    zero = mimic_cxr(mimic, size=SIZE, uncertain="zero").train.targets[0]
    assert one[a["Cardiomegaly"]] == 1 and zero[a["Cardiomegaly"]] == 0
    assert np.isnan(mimic_cxr(mimic, size=SIZE, blank="nan").train.targets[0, a["Fracture"]])
    # NegBio table
    s = mimic_cxr(mimic, size=SIZE, labeler="negbio", views=None)
    for d in s:
        for r in d.records:
            np.testing.assert_array_equal(r.labels, _mimic_expected("negbio", r.meta["study_id"]), err_msg=r.image_id)
    assert s.train.targets[0, a["Atelectasis"]] == 0 and np.isnan(s.test.targets[0, a["Pneumothorax"]])
    # a subset of classes, in the given order
    s = mimic_cxr(mimic, size=SIZE, classes=["Edema", "Atelectasis"])
    assert s.class_names == ("Edema", "Atelectasis")
    np.testing.assert_array_equal(s.train.targets, [[0, 1], [0, 0]])
    np.testing.assert_array_equal(s.test.targets, [[np.nan, 0], [0, 0]])
    with pytest.raises(ValueError, match=r"'Effusion'.*Pleural Effusion"):
        mimic_cxr(mimic, classes=["Effusion"])
    with pytest.raises(ValueError, match="labeler"):
        mimic_cxr(mimic, labeler="chexbert")
    with pytest.raises(ValueError, match="uncertain"):
        mimic_cxr(mimic, uncertain="maybe")


def test_mimic_cxr_views(mimic: Path):
    s = mimic_cxr(mimic, size=SIZE, views=None)
    assert (_ids(s.train), _ids(s.val), _ids(s.test)) == (["d1", "d2", "d3"], ["d5"], ["d6", "d7", "d8"])
    assert s.train.records[1].meta["view"] == "LATERAL" and s.test.records[1].meta["view"] == ""
    lat = mimic_cxr(mimic, size=SIZE, views=("lateral",))
    assert _ids(lat.train) == ["d2"] and lat.val is None and lat.test is None
    assert (_ids(mimic_cxr(mimic, size=SIZE, views="PA").train), _ids(mimic_cxr(mimic, size=SIZE, views="PA").test)) \
        == (["d1"], ["d8"])
    # the same study's labels on each of its images
    np.testing.assert_array_equal(s.train.records[0].labels, s.train.records[1].labels)
    # without the metadata table: views=None works (view unknown), a views filter is refused
    (mimic / "mimic-cxr-2.0.0-metadata.csv.gz").unlink()
    s = mimic_cxr(mimic, size=SIZE, views=None)
    assert _ids(s.train) == ["d1", "d2", "d3"] and s.train.records[0].meta["view"] is None
    with pytest.raises(FileNotFoundError, match=r"mimic-cxr-2\.0\.0-metadata\.csv\.gz.*views=None"):
        mimic_cxr(mimic, size=SIZE)


def test_mimic_cxr_plain_csv_and_missing_tables(mimic: Path):
    gz = mimic / "mimic-cxr-2.0.0-split.csv.gz"
    with gzip.open(gz, "rt", encoding="utf-8") as fh:
        text = fh.read()
    gz.unlink()
    with pytest.raises(FileNotFoundError, match=r"mimic-cxr-2\.0\.0-split\.csv\.gz not found.*files/pXX"):
        mimic_cxr(mimic, size=SIZE)
    (mimic / "mimic-cxr-2.0.0-split.csv").write_text(text, encoding="utf-8")
    s = mimic_cxr(mimic, size=SIZE)
    assert (_ids(s.train), _ids(s.val), _ids(s.test)) == (["d1", "d3"], ["d5"], ["d6", "d8"])
    (mimic / "mimic-cxr-2.0.0-split.csv").write_text(text.replace("validate", "valid"), encoding="utf-8")
    with pytest.raises(ValueError, match="'valid' is not train, validate or test"):
        mimic_cxr(mimic, size=SIZE)
    (mimic / "mimic-cxr-2.0.0-negbio.csv.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"mimic-cxr-2\.0\.0-negbio\.csv\.gz not found"):
        mimic_cxr(mimic, labeler="negbio")
    (mimic / "mimic-cxr-2.0.0-chexpert.csv.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(ValueError, match="chexpert.csv.gz is not a complete gzip file"):
        mimic_cxr(mimic, size=SIZE)
    with pytest.raises(FileNotFoundError, match="not found"):
        mimic_cxr(mimic / "nowhere")


def test_mimic_cxr_missing_image_fail_and_skip(mimic: Path, caplog: pytest.LogCaptureFixture):
    gone = _mimic_path(mimic, "d6")
    gone.unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 image file\(s\) not found: .*s52000001/d6\.jpg"):
        mimic_cxr(mimic, size=SIZE, on_error="fail")
    with caplog.at_level(logging.WARNING, logger="chexradi.data.datasets"):
        s = mimic_cxr(mimic, size=SIZE, on_error="skip")
    assert _ids(s.test) == ["d8"] and s.test.skipped == 1 and "skipping 1 of 2" in caplog.text
    assert _ids(s.train) == ["d1", "d3"] and s.train.skipped == 0
    assert tuple(s.test[0]["image"].shape) == (1, SIZE, SIZE)


def test_mimic_cxr_images_get_their_study_report_and_missing_ones_are_counted(mimic: Path, caplog):
    files = mimic / "reports" / "files"
    written = {}
    for subject, study, _, _ in MIMIC_IMAGES.values():
        if study in ("50000002", "52000002") or study in written:  # two studies without a report
            continue
        p = files / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"FINDINGS: Report of study {study}.\nIMPRESSION: No acute process.")
        written[study] = p
    with caplog.at_level(logging.WARNING, logger="chexradi.data"):
        s = ds.mimic_cxr(mimic, size=SIZE)  # found at root/reports
    for part in (s.train, s.val, s.test):
        for i, r in enumerate(part.records):
            rep = part.report_at(i)
            if r.meta["study_id"] in written:
                assert rep.findings == f"Report of study {r.meta['study_id']}."
            else:
                assert rep is None
    assert "have no report" in caplog.text
    with pytest.raises(FileNotFoundError, match="mimic-cxr-reports"):
        ds.mimic_cxr(mimic, size=SIZE, reports=mimic / "nowhere.zip")


def test_iu_xray_spec_with_r2gen_layout(tmp_path):
    import json

    from chexradi.data.sources import open_data
    from chexradi.guidance.text import report_texts

    ann = json.loads(shared("iu-xray-reports", "r2gen_annotation.json").read_text())
    small = {s: ann[s][:6] for s in ("train", "val", "test")}
    (tmp_path / "annotation.json").write_text(json.dumps(small))
    for s in small:
        for e in small[s][:5]:  # the sixth study of each split has no image
            for ip in e["image_path"]:
                (tmp_path / "images" / ip).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "images" / ip)
    sp = open_data(f"iu_xray:{tmp_path}", size=32)
    assert [len(p) for p in (sp.train, sp.val, sp.test)] == [5, 5, 5]
    assert report_texts(sp.test)[0] == " ".join(small["test"][0]["report"].split())
    with pytest.raises(FileNotFoundError, match="annotation.json"):
        open_data(f"iu_xray:{tmp_path / 'images'}")


def test_iu_xray_spec_with_the_openi_xml_splits_by_report(tmp_path):
    import tarfile

    from chexradi.data.reports_join import iu_xray
    from chexradi.data.sources import open_data

    xml = tmp_path / "ecgen-radiology"
    xml.mkdir()
    with tarfile.open(shared("iu-xray-reports", "NLMCXR_reports.tgz")) as tf:
        members = sorted((m for m in tf.getmembers() if m.name.endswith(".xml")), key=lambda m: int(Path(m.name).stem))
        for m in members[:40]:
            (xml / Path(m.name).name).write_bytes(tf.extractfile(m).read())
    images = [im for r in iu_xray(xml, labels="none").records for im in r.meta["images"]]
    for im in images:
        Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / f"{im}.png")
    sp = open_data(f"iu_xray:{tmp_path}", size=32, seed=1)
    parts = {"train": sp.train, "val": sp.val, "test": sp.test}
    assert sum(len(p) for p in parts.values()) == len(images) and min(len(p) for p in parts.values()) > 0
    owner = {}  # every report's images in one split
    for name, p in parts.items():
        for r in p.records:
            assert owner.setdefault(r.report.id, name) == name
    assert all(p.report_at(0) is not None for p in parts.values())
