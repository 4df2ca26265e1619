"""Bad input data: what the user sees, through the Python API and the CLI.

Every case checks the exception class (or exit status and stderr for the CLI) and that
the message names the file or argument at fault and says how to fix it:

- a dataset folder without its label table (ChestX-ray14, CheXpert, MIMIC-CXR-JPG, CSV);
- labels outside the known set (an unknown finding, a bad label code, ``class_names`` /
  ``classes`` / ``--class`` naming an unknown class);
- model checkpoints of another architecture, truncated, or not a checkpoint at all
  (``load_model``, a resumed ``fit`` / ``chexradi iterate``, ``chexradi heatmap``);
- odd radiographs: truncated PNG/JPEG/DICOM (found before training, or skipped with a
  count), 16-bit PNG and float images (read exactly), RGB (grey by luminance).

There is no ``chexradi train`` command (``chexradi --help``); training is reached
through ``chexradi iterate`` and ``chexradi.train.fit``. Everything is tiny: the module
runs in a few seconds.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from click.testing import CliRunner, Result
from PIL import Image

from chexradi.data import readers
from chexradi.data.datasets import (CHESTXRAY14_CLASSES, CHEXPERT_CLASSES, MIMIC_CXR_CLASSES, chestxray14, chexpert,
                                    csv_dataset, mimic_cxr)
from chexradi.data.readers import read_radiograph
from chexradi.data.sources import open_data, phantom_splits
from chexradi.data.transforms import to_model_input

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SIZE = 16
KNOWN_CXR14 = ", ".join(CHESTXRAY14_CLASSES)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def cli(*args: object) -> Result:
    from chexradi.cli import cli as group

    return CliRunner().invoke(group, [str(a) for a in args], catch_exceptions=False)


def iterate_cli(data: str, out: Path, *extra: object) -> Result:
    return cli("iterate", "--data", data, "--out", out, "--model", "resnet18_ta", "--epochs", "1", "--jobs", "1",
               "--quiet", *extra)


def assert_config_error(res: Result, *parts: str) -> str:
    """Exit status 2 (invalid settings or data, nothing done) and every part in the 'Error: ...' line."""
    assert res.exit_code == 2, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    line = next((x for x in res.stderr.splitlines() if x.startswith("Error: ")), "")
    for part in parts:
        assert part in line, f"{part!r} not in {line!r}"
    return line


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def grey(seed: int, shape: tuple[int, int] = (40, 36), dtype: type = np.uint8) -> np.ndarray:
    top = 255 if dtype == np.uint8 else 65535
    return np.random.default_rng(seed).integers(0, top + 1, shape).astype(dtype)


def make_cxr14(root: Path, findings: dict[str, str]) -> Path:
    """A ChestX-ray14 folder: Data_Entry_2017.csv, both list files, images/ (one patient per image)."""
    lines = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position"]
    for i, (name, f) in enumerate(findings.items()):
        write_png(root / "images" / name, grey(i))
        lines.append(f"{name},{f},0,{i + 1},50,M,PA")
    (root / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    names = list(findings)
    (root / "train_val_list.txt").write_text("\n".join(names[:-1]) + "\n", encoding="utf-8")
    (root / "test_list.txt").write_text(names[-1] + "\n", encoding="utf-8")
    return root


CXR14_FINDINGS = {"00000001_000.png": "Mass", "00000002_000.png": "No Finding", "00000003_000.png": "Nodule|Mass",
                  "00000004_000.png": "Effusion"}


def make_chexpert(root: Path) -> Path:
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_CLASSES)
    rows = [header]
    for k in range(3):
        rel = f"{root.name}/train/patient{k:05d}/study1/view1_frontal.jpg"
        write_png(root.parent / rel, grey(k))
        rows.append(f"{rel},Male,50,Frontal,PA," + ",".join(["1.0", "0.0", "-1.0"] + [""] * 11))
    (root / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def make_mimic(root: Path) -> Path:
    images = {"d1": ("10000032", "50000001", "train"), "d2": ("11000011", "51000001", "validate"),
              "d3": ("12000022", "52000001", "test")}
    split, meta, labels = ["dicom_id,study_id,subject_id,split"], ["dicom_id,ViewPosition"], \
        ["subject_id,study_id," + ",".join(MIMIC_CXR_CLASSES)]
    for k, (dicom, (subject, study, part)) in enumerate(images.items()):
        write_png(root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg", grey(k))
        split.append(f"{dicom},{study},{subject},{part}")
        meta.append(f"{dicom},PA")
        labels.append(f"{subject},{study}," + ",".join(["1.0"] + [""] * 13))
    for name, lines in (("split", split), ("metadata", meta), ("chexpert", labels)):
        (root / f"mimic-cxr-2.0.0-{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------------
# 1. a dataset folder without its label table
# ------------------------------------------------------------------------------------------------
def test_chestxray14_without_data_entry_csv(tmp_path: Path) -> None:
    root = make_cxr14(tmp_path / "cxr14", CXR14_FINDINGS)
    assert len(chestxray14(root, size=SIZE, val_fraction=0).train) == 3  # the folder itself is fine
    (root / "Data_Entry_2017.csv").unlink()
    expected = (f"{root / 'Data_Entry_2017.csv'} not found. The ChestX-ray14 folder {root} must contain "
                "Data_Entry_2017.csv, train_val_list.txt, test_list.txt (BBox_List_2017.csv optional) and the "
                "images in images/ or images_001/images/ ... images_012/images/.")
    with pytest.raises(FileNotFoundError) as err:
        chestxray14(root)
    assert str(err.value) == expected
    with pytest.raises(FileNotFoundError) as err:
        open_data(f"chestxray14:{root}")
    assert str(err.value) == expected
    out = tmp_path / "run"
    assert_config_error(iterate_cli(f"chestxray14:{root}", out), expected)
    assert not out.exists()  # nothing written before the data is known to be usable


def test_chexpert_without_train_csv(tmp_path: Path) -> None:
    root = make_chexpert(tmp_path / "CheXpert-v1.0-small")
    assert len(chexpert(root, size=SIZE, val_fraction=0).train) == 3
    (root / "train.csv").unlink()
    expected = (f"{root / 'train.csv'} not found. The CheXpert folder {root} must contain train.csv, valid.csv "
                "and the train/ and valid/ image folders.")
    with pytest.raises(FileNotFoundError) as err:
        chexpert(root)
    assert str(err.value) == expected
    out = tmp_path / "run"
    assert_config_error(iterate_cli(f"chexpert:{root}", out), expected)
    assert not out.exists()


def test_mimic_without_label_or_metadata_table(tmp_path: Path) -> None:
    root = make_mimic(tmp_path / "mimic-cxr-jpg" / "2.1.0")
    assert len(mimic_cxr(root, size=SIZE).train) == 1
    (root / "mimic-cxr-2.0.0-chexpert.csv").unlink()
    with pytest.raises(FileNotFoundError) as err:
        mimic_cxr(root)
    msg = str(err.value)
    # the .csv.gz as distributed is named (a plain .csv is accepted too, the message says so)
    assert msg.startswith(f"{root / 'mimic-cxr-2.0.0-chexpert.csv.gz'} not found. The MIMIC-CXR-JPG folder {root} "
                          "must contain mimic-cxr-2.0.0-split.csv.gz, mimic-cxr-2.0.0-chexpert.csv.gz")
    assert "plain .csv files are accepted too" in msg and "files/pXX/pSUBJECT/sSTUDY/" in msg
    out = tmp_path / "run"
    assert_config_error(iterate_cli(f"mimic:{root}", out), "mimic-cxr-2.0.0-chexpert.csv.gz not found")
    assert not out.exists()
    with pytest.raises(FileNotFoundError, match=r"mimic-cxr-2\.0\.0-negbio\.csv\.gz not found"):
        mimic_cxr(root, labeler="negbio")
    # the metadata table is needed only for the views filter; the message says how to do without it
    make_mimic(root)
    (root / "mimic-cxr-2.0.0-metadata.csv").unlink()
    with pytest.raises(FileNotFoundError) as err:
        mimic_cxr(root)
    assert str(err.value) == (f"{root / 'mimic-cxr-2.0.0-metadata.csv.gz'} not found; it gives each image's "
                              f"ViewPosition, which views=('PA', 'AP') needs. Add it to {root} or pass views=None to "
                              "keep every view.")
    assert len(mimic_cxr(root, size=SIZE, views=None).train) == 1


def test_csv_source_without_its_table(tmp_path: Path) -> None:
    missing = tmp_path / "labels.csv"
    with pytest.raises(FileNotFoundError) as err:
        csv_dataset(missing)
    assert str(err.value) == f"label CSV {missing} not found; pass the table with one row per image."
    out = tmp_path / "run"
    assert_config_error(iterate_cli(f"csv:{missing}", out),
                        f"data spec 'csv:{missing}': the file {missing} does not exist; check the path")
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# 2. labels outside the known set
# ------------------------------------------------------------------------------------------------
def test_chestxray14_unknown_finding(tmp_path: Path) -> None:
    root = make_cxr14(tmp_path / "cxr14", {**CXR14_FINDINGS, "00000003_000.png": "Nodule|Pneumonitis"})
    expected = (f"{root / 'Data_Entry_2017.csv'} line 4 (00000003_000.png): unknown label 'Pneumonitis'; "
                f"known labels: {KNOWN_CXR14} (or 'No Finding').")
    with pytest.raises(ValueError) as err:
        chestxray14(root)
    assert str(err.value) == expected
    out = tmp_path / "run"
    assert_config_error(iterate_cli(f"chestxray14:{root}", out), expected)
    assert not out.exists()


def _findings_csv(path: Path, findings: list[str]) -> Path:
    lines = ["Image Index,Finding Labels"]
    for i, f in enumerate(findings):
        write_png(path.parent / "images" / f"{i}.png", grey(i))
        lines.append(f"{i}.png,{f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_findings_outside_class_names(tmp_path: Path) -> None:
    table = _findings_csv(tmp_path / "f.csv", ["Mass", "No Finding", "Nodule|Mass", "Lump"])
    # without class_names the classes are the findings found (not all ChestX-ray14 ones: sorted as found)
    assert csv_dataset(table, size=SIZE).class_names == ("Lump", "Mass", "Nodule")
    with pytest.raises(ValueError) as err:
        csv_dataset(table, size=SIZE, class_names=["Mass", "Nodule"])
    assert str(err.value) == (f"{table} line 5 (3.png): unknown label 'Lump'; known labels: Mass, Nodule "
                              "(or 'No Finding').")


def test_csv_class_names_with_an_unknown_class(tmp_path: Path) -> None:
    table = _findings_csv(tmp_path / "f.csv", ["Mass", "No Finding", "Nodule|Mass"])
    with pytest.raises(ValueError) as err:  # a misspelt class would otherwise be an all-zero column
        csv_dataset(table, size=SIZE, class_names=["Mass", "Nodle"])
    assert str(err.value) == (f"{table}: class_names ['Nodle'] name no finding of the 'Finding Labels' column (found: "
                              "Mass, Nodule) and no ChestX-ray14 class; check the spelling, or pass class_names=None "
                              "to use the findings found.")
    # a ChestX-ray14 class that this table never mentions is fine (all negative)
    s = csv_dataset(table, size=SIZE, class_names=["Mass", "Nodule", "Hernia"])
    np.testing.assert_array_equal(s.train.targets, [[1, 0, 0], [0, 0, 0], [1, 1, 0]])
    with pytest.raises(ValueError, match=r"class_names lists \['Mass'\] more than once; give each class once"):
        csv_dataset(table, size=SIZE, class_names=["Mass", "Mass"])

    # 0/1 label columns: class_names picks and orders them; a name that is not a label column is refused
    codes = tmp_path / "codes.csv"
    codes.write_text("Image,A,B,Age\nimages/0.png,1,0,40\nimages/1.png,0,1,41\n", encoding="utf-8")
    assert csv_dataset(codes, size=SIZE).class_names == ("A", "B")
    s = csv_dataset(codes, size=SIZE, class_names=["B", "A"])
    assert s.class_names == ("B", "A")
    np.testing.assert_array_equal(s.train.targets, [[0, 1], [1, 0]])
    with pytest.raises(ValueError) as err:
        csv_dataset(codes, size=SIZE, class_names=["A", "C"])
    assert str(err.value) == (f"{codes}: class_names ['C'] are not label columns of the table (its label columns: "
                              "A, B); fix the names, or pass class_names=None to use every label column.")


def test_chexpert_label_codes_and_columns(tmp_path: Path) -> None:
    root = make_chexpert(tmp_path / "CheXpert-v1.0-small")
    train = root / "train.csv"
    text = train.read_text(encoding="utf-8")
    lines = text.splitlines()
    cells = lines[2].split(",")
    cells[5 + CHEXPERT_CLASSES.index("Edema")] = "2.0"
    train.write_text("\n".join([lines[0], lines[1], ",".join(cells), *lines[3:]]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        chexpert(root)
    assert str(err.value) == f"{train} line 3 column 'Edema': label value '2.0' is not 1, 0, -1 or blank."
    train.write_text(text.replace(",Edema,", ",Oedema,"), encoding="utf-8")
    with pytest.raises(ValueError) as err:
        chexpert(root)
    assert str(err.value).startswith(f"{train} has no 'Edema' column (looked for 'Edema'; header: 'Path', ")


def test_mimic_unknown_classes(tmp_path: Path) -> None:
    root = make_mimic(tmp_path / "mimic")
    assert mimic_cxr(root, size=SIZE, classes=["Edema", "Pneumothorax"]).class_names == ("Edema", "Pneumothorax")
    with pytest.raises(ValueError) as err:
        mimic_cxr(root, classes=["Edema", "Oedema"])
    assert str(err.value) == ("classes must be distinct MIMIC-CXR observations, got ['Edema', 'Oedema']; known: "
                              f"{', '.join(MIMIC_CXR_CLASSES)}.")
    with pytest.raises(ValueError, match=r"got \['Edema', 'Edema'\]"):
        mimic_cxr(root, classes=["Edema", "Edema"])


# ------------------------------------------------------------------------------------------------
# 3. model checkpoints: another architecture, truncated, not a checkpoint
# ------------------------------------------------------------------------------------------------
CLASSES = ["Nodule", "Effusion"]


@pytest.fixture(scope="module")
def ckpt18(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from chexradi.nn import create_model, save_checkpoint

    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = create_model("resnet18_ta", num_classes=2, in_chans=1, class_names=CLASSES)
    ckpt = save_checkpoint(root / "resnet18.pt", model, meta={"image_size": 32})
    image = write_png(root / "cxr.png", grey(3, (48, 40)))
    return {"root": root, "ckpt": ckpt, "image": image}


def test_resnet18_checkpoint_loaded_as_resnet50(ckpt18: dict[str, Path], tmp_path: Path) -> None:
    import torchvision

    from chexradi.nn import create_model, load_model
    from chexradi.nn.checkpoint import read_checkpoint

    p = ckpt18["ckpt"]
    with pytest.raises(ValueError) as err:
        load_model(p, expect="resnet50_ta")
    assert str(err.value) == (f"checkpoint {p} holds a resnet18_ta model, not resnet50_ta; pass a checkpoint of "
                              "resnet50_ta or build the model as resnet18_ta")
    # a checkpoint whose config says resnet50 but whose weights are resnet18's
    ck = read_checkpoint(p)
    ck["config"] = {**ck["config"], "name": "resnet50_ta", "arch": "resnet50"}
    lie = tmp_path / "mixed.pt"
    torch.save(ck, lie)
    with pytest.raises(ValueError) as err:
        load_model(lie)
    msg = str(err.value)
    assert msg.startswith(f"the weights in {lie} do not fit a resnet50_ta model: Error(s) in loading state_dict")
    assert msg.endswith("use the checkpoint as written by chexradi.train.fit")
    # torchvision resnet18 weights as a resnet50 backbone
    tv = tmp_path / "resnet18_tv.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tv)
    with pytest.raises(ValueError) as err:
        create_model("resnet50", num_classes=2, weights=tv)
    assert str(err.value).startswith(f"weights file {tv} is not a torchvision resnet50 state_dict (shape mismatch in ")
    assert str(err.value).endswith("pass the weights of the same architecture")


def test_fit_resumed_with_another_model(tmp_path: Path) -> None:
    from chexradi.nn import create_model
    from chexradi.train import fit

    sp = phantom_splits(4, 2, 1, size=32)
    kw = dict(epochs=1, batch_size=4, device="cpu", progress=False, out=tmp_path / "fit")
    torch.manual_seed(0)
    fit(create_model("resnet18_ta", num_classes=len(sp.class_names), in_chans=1), sp.train, sp.val, **kw)
    last = tmp_path / "fit" / "last.pt"
    with pytest.raises(ValueError) as err:
        fit(create_model("resnet34_ta", num_classes=len(sp.class_names), in_chans=1), sp.train, sp.val, **kw)
    assert str(err.value) == (f"cannot resume from {last}: it holds a resnet18_ta model whose config differs from "
                              "this resnet34_ta model in ['arch', 'name']; use a new out directory, or resume=False to "
                              "start over there")


def test_iterate_resumed_with_another_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import chexradi
    from chexradi.loop import run as loop_run

    spec = "phantom:n_train=4,n_val=2,n_test=2,size=32"
    out = tmp_path / "run"

    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as a Ctrl-C in round 0: run.json is written, nothing trained

    monkeypatch.setattr(loop_run, "_run_round", stop)
    with pytest.raises(KeyboardInterrupt):
        chexradi.iterate(spec, model="resnet18_ta", rounds=1, out=out, train={"epochs": 1}, radiomics={"jobs": 1},
                         progress=False)
    monkeypatch.undo()
    assert (out / "run.json").is_file() and not (out / "round_0").exists()
    res = cli("iterate", "--data", spec, "--out", out, "--model", "resnet34_ta", "--rounds", "1", "--epochs", "1",
              "--jobs", "1", "--quiet")
    assert_config_error(res, f"cannot resume {out}: it was started with other settings (differing: model); use the "
                             "same settings, or a new out folder")
    assert not (out / "round_0").exists()


def test_heatmap_with_a_truncated_checkpoint(ckpt18: dict[str, Path], tmp_path: Path) -> None:
    data = ckpt18["ckpt"].read_bytes()
    cut = tmp_path / "best.pt"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    line = assert_config_error(cli("heatmap", cut, ckpt18["image"], "--out", out, "--quiet"),
                               f"cannot read model checkpoint {cut} ({len(data) // 2} bytes): ",
                               "The file is truncated or not a torch.save file (an interrupted copy or download?); "
                               "copy it again, or pass the best.pt/last.pt written by chexradi.train.fit")
    assert "Traceback" not in line and not out.exists()
    # the intact file works
    res = cli("heatmap", ckpt18["ckpt"], ckpt18["image"], "--out", out, "--quiet")
    assert res.exit_code == 0, res.stderr


def test_heatmap_with_a_file_that_is_not_a_checkpoint(ckpt18: dict[str, Path], tmp_path: Path) -> None:
    from chexradi.nn.checkpoint import FORMAT

    image, out = ckpt18["image"], tmp_path / "out"
    # arguments swapped: an image where the model belongs
    assert_config_error(cli("heatmap", image, ckpt18["ckpt"], "--out", out),
                        f"{image} is a PNG image, not a model checkpoint; pass the best.pt/last.pt written by "
                        "chexradi.train.fit (`chexradi heatmap MODEL.pt IMAGE...`: the checkpoint comes first)")
    # a plain state_dict (torch file, but no chexradi config)
    plain = tmp_path / "state.pt"
    torch.save({"w": torch.zeros(2)}, plain)
    assert_config_error(cli("heatmap", plain, image, "--out", out),
                        f"{plain} is not a chexradi model checkpoint (expected format {FORMAT!r}); a plain "
                        "torchvision state_dict goes to create_model(..., weights=PATH)")
    # text / JSON and random bytes
    js = tmp_path / "run.json"
    js.write_text('{"format": "chexradi-run/1"}')
    assert_config_error(cli("heatmap", js, image, "--out", out), f"{js} is a JSON/text file, not a model checkpoint")
    junk = tmp_path / "model.pt"
    junk.write_bytes(bytes(range(256)) * 4)
    assert_config_error(cli("heatmap", junk, image, "--out", out), f"cannot read model checkpoint {junk} (1024 bytes)",
                        "The file is truncated or not a torch.save file")
    missing = tmp_path / "nope.pt"
    assert_config_error(cli("heatmap", missing, image, "--out", out), f"model checkpoint not found: {missing}")
    assert not out.exists()


def test_heatmap_unknown_class(ckpt18: dict[str, Path], tmp_path: Path) -> None:
    res = cli("heatmap", ckpt18["ckpt"], ckpt18["image"], "--out", tmp_path / "out", "--class", "Pneumothorax")
    assert_config_error(res, "unknown class name 'Pneumothorax' in classes; the model's classes are Nodule, Effusion")


# ------------------------------------------------------------------------------------------------
# 4. odd radiographs
# ------------------------------------------------------------------------------------------------
def _dicom(path: Path) -> Path:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    src = get_testdata_file("CT_small.dcm", download=False)  # ships with pydicom: 128 x 128, 16-bit, uncompressed
    ds = pydicom.dcmread(src)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


def _image(kind: str, path: Path, seed: int) -> Path:
    if kind == "dicom":
        return _dicom(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = grey(seed, (96, 80))
    Image.fromarray(arr).save(path, **({"quality": 90} if kind == "jpeg" else {}))
    return path


SUFFIX = {"png": ".png", "jpeg": ".jpg", "dicom": ".dcm"}


@pytest.mark.parametrize("kind", ["png", "jpeg", "dicom"])
def test_truncated_radiograph_in_a_dataset(kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = [_image(kind, tmp_path / "images" / f"im{i}{SUFFIX[kind]}", i) for i in range(3)]
    table = tmp_path / "labels.csv"
    rows = "".join(f"images/{p.name},{i % 2}\n" for i, p in enumerate(paths))
    table.write_text("Image,Nodule\n" + rows, encoding="utf-8")
    bad = paths[1]
    data = bad.read_bytes()
    bad.write_bytes(data[: int(len(data) * 0.6)])  # an interrupted copy: the header is intact
    assert readers.image_shape_and_spacing(bad)  # so a header-only check alone would pass it
    assert not readers.looks_complete(bad) and readers.looks_complete(paths[0])

    # validated when opened (the default): fails before any training, naming the file
    with pytest.raises(ValueError) as err:
        open_data(f"csv:{table}", size=SIZE)
    msg = str(err.value)
    assert msg.startswith(f"1 image(s) of the train split cannot be read: {bad}: Cannot ")
    assert msg.endswith("Fix or remove them, or skip them (on_error='skip', chexradi iterate --skip-bad-images)")
    assert "The file may be truncated or corrupt" in msg  # the reader's own words (no decoder advice for DICOM)
    assert "pip install" not in msg
    out = tmp_path / "run"
    assert_config_error(iterate_cli(f"csv:{table}", out, "--size", SIZE), "1 image(s) of the train split cannot be "
                        f"read: {bad}: Cannot ", "--skip-bad-images")
    assert not out.exists()

    # skipped with a count
    with caplog.at_level(logging.WARNING, logger="chexradi.data"):
        s = open_data(f"csv:{table}", size=SIZE, on_error="skip")
    assert [r.path for r in s.train.records] == [paths[0], paths[2]] and s.train.skipped == 1
    assert f"skipping 1 unreadable image(s) of the train split: {bad}: " in caplog.text

    # not validated: reading the item fails naming the file (never a silent partial image)
    s = open_data(f"csv:{table}", size=SIZE, validate=False)
    with pytest.raises(ValueError, match=f"{bad.name}"):
        s.train[1]
    assert tuple(s.train[0]["image"].shape) == (1, SIZE, SIZE)

    # chexradi heatmap on the truncated file: exit 1, the file named, the good one still done
    res = cli("heatmap", _checkpoint(tmp_path), paths[0], bad, "--out", tmp_path / "hm", "--all-classes")
    assert res.exit_code == 1, res.stderr
    assert "2 image(s): 1 done, 1 failed" in res.stderr
    assert any(x.strip().startswith(f"{bad}: Cannot ") for x in res.stderr.splitlines()), res.stderr


def _checkpoint(folder: Path) -> Path:
    from chexradi.nn import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("resnet18_ta", num_classes=1, in_chans=1, class_names=["Nodule"])
    return save_checkpoint(folder / "model.pt", model, meta={"image_size": 32})


def test_looks_complete_tolerates_trailing_data(tmp_path: Path) -> None:
    """A valid file with bytes after its end marker is decoded, not reported (validate decodes suspects)."""
    p = _image("png", tmp_path / "images" / "a.png", 0)
    p.write_bytes(p.read_bytes() + b"\0" * 16)
    assert not readers.looks_complete(p)
    table = tmp_path / "t.csv"
    table.write_text("Image,Nodule\nimages/a.png,1\n", encoding="utf-8")
    s = csv_dataset(table, size=SIZE)
    assert s.train.validate() == (True, [])


def test_16bit_png_is_read_exactly(tmp_path: Path) -> None:
    arr = grey(5, (50, 44), np.uint16)
    arr[0, 0], arr[0, 1] = 0, 65535
    p = write_png(tmp_path / "images" / "a.png", arr)
    with Image.open(p) as im:
        assert im.mode.startswith("I")  # stored as 16-bit, not reduced to 8
    image, spacing = read_radiograph(p)
    assert image.dtype == np.float64 and spacing == (1.0, 1.0)
    np.testing.assert_array_equal(image, arr.astype(np.float64))
    table = tmp_path / "t.csv"
    table.write_text("Image,Nodule\nimages/a.png,1\n", encoding="utf-8")
    item = csv_dataset(table, size=SIZE).train[0]["image"].numpy()
    np.testing.assert_array_equal(item, to_model_input(arr.astype(np.float64), size=SIZE))


@pytest.mark.parametrize("suffix,dtype", [(".nrrd", np.float32), (".nii.gz", np.float64)])
def test_float_images_are_read_exactly(suffix: str, dtype: type, tmp_path: Path) -> None:
    arr = (np.random.default_rng(1).normal(0.0, 300.0, (30, 26))).astype(dtype)  # negative and fractional values
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.5, 0.25))  # (x, y) = (column, row)
    p = tmp_path / f"float{suffix}"
    sitk.WriteImage(img, str(p))
    image, spacing = read_radiograph(p)
    np.testing.assert_array_equal(image, arr.astype(np.float64))
    assert spacing == (0.25, 0.5)
    arr[3, 4] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(p))
    with pytest.raises(ValueError) as err:
        read_radiograph(p)
    assert str(err.value).startswith(f"{p}: 1 of 780 pixel(s) are NaN or infinite; a radiograph needs finite "
                                     "intensities. Replace them")


def test_rgb_radiographs_become_grey_by_luminance(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    g = grey(2, (30, 28))
    same = write_png(tmp_path / "same.png", np.stack([g, g, g], axis=-1))
    with caplog.at_level(logging.INFO, logger="chexradi.data.readers"):
        image, _ = read_radiograph(same)
    np.testing.assert_allclose(image, g.astype(np.float64), rtol=0, atol=1e-9)  # an RGB-saved grey film
    assert f"{same}: RGB image converted to grey by luminance (0.299 R + 0.587 G + 0.114 B); its three channels " \
           "are identical" in caplog.text
    rgb = np.random.default_rng(3).integers(0, 256, (30, 28, 3)).astype(np.uint8)
    colour = write_png(tmp_path / "colour.png", rgb)
    rgba = write_png(tmp_path / "rgba.png", np.concatenate([rgb, np.full((30, 28, 1), 7, np.uint8)], axis=-1))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="chexradi.data.readers"):
        a, _ = read_radiograph(colour)
        b, _ = read_radiograph(rgba)
    want = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(a, want, rtol=1e-12)
    np.testing.assert_array_equal(b, a)  # alpha dropped
    assert "its channels differ (a colour image?)" in caplog.text


def test_heatmap_output_folder_untouched_by_bad_model(tmp_path: Path) -> None:
    """A refused checkpoint leaves an existing output folder as it was."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    cut = tmp_path / "m.pt"
    cut.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    image = write_png(tmp_path / "a.png", grey(0))
    assert_config_error(cli("heatmap", cut, image, "--out", out), f"cannot read model checkpoint {cut}")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    shutil.rmtree(out)
