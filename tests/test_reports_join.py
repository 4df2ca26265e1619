"""Reports joined to images: IU X-ray XML + NLMCXR PNGs, R2Gen's annotation, MIMIC-CXR reports, CSV; every
failed join counted, never dropped silently. Real IU X-ray reports from ../shared/data; images are generated
placeholders with the exact file names the reports name."""
from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chexradi.data.cxr_dataset import CXRDataset
from chexradi.data.reports_join import csv_reports, iu_xray, mimic_cxr_reports, r2gen_iu_xray
from conftest import shared

IU = ("iu-xray-reports", "NLMCXR_reports.tgz")
R2GEN = ("iu-xray-reports", "r2gen_annotation.json")


def _png(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 40), value, np.uint8)).save(path)


@pytest.fixture(scope="module")
def iu_subset(tmp_path_factory):
    """The first 60 real reports (by number) as XML files, and placeholder PNGs for all of their images but those
    of the first five reports with images, plus three images no report names."""
    root = tmp_path_factory.mktemp("iu")
    xml_dir, img_dir = root / "ecgen-radiology", root / "NLMCXR_png"
    xml_dir.mkdir()
    with tarfile.open(shared(*IU)) as tf:
        members = sorted((m for m in tf.getmembers() if m.name.endswith(".xml")),
                         key=lambda m: int(Path(m.name).stem))[:60]
        for m in members:
            (xml_dir / Path(m.name).name).write_bytes(tf.extractfile(m).read())
    reports_only = iu_xray(xml_dir, labels="none")
    with_images = [r for r in reports_only.records if r.meta["images"]]
    dropped = {r.image_id for r in with_images[:5]}
    n_images = 0
    for r in with_images[5:]:
        for im in r.meta["images"]:
            _png(img_dir / f"{im}.png")
            n_images += 1
    for k in range(3):
        _png(img_dir / f"CXR99999_{k}_IM-9999-1001.png")
    return {"xml": xml_dir, "images": img_dir, "dropped": dropped, "n_images": n_images,
            "reports_only": reports_only, "with_images": with_images}


@pytest.mark.slow
def test_iu_reports_alone_real_data():
    j = iu_xray(shared(*IU))
    rep = j.report
    assert rep.reports_read == 3927 and len(rep.reports_unreadable) == 28 and rep.records == 3927
    assert all("no text" in why for _, why in rep.reports_unreadable)
    assert rep.joined == 0 and all(r.path is None for r in j.records)
    assert len(j.class_names) == 14 and j.records[0].labels.shape == (14,)
    assert sum(bool(r.report.findings) for r in j.records) == 3425
    r = next(r for r in j.records if r.image_id == "CXR1")
    assert r.report.findings.startswith("The cardiac silhouette and mediastinum size are within normal limits")
    assert r.report.impression.startswith("Normal chest") and r.meta["images"] == ["CXR1_1_IM-0001-3001",
                                                                                    "CXR1_1_IM-0001-4001"]
    mesh = iu_xray(shared(*IU), labels="mesh")
    cardio = mesh.class_names.index("Cardiomegaly")
    assert np.nansum([r.labels[cardio] for r in mesh.records]) > 300  # the indexers' Cardiomegaly
    req = iu_xray(shared(*IU), labels="none", require_findings=True)
    assert req.report.records == 3425 and req.report.skipped == {"no Findings section": 502}


def test_iu_reports_joined_to_images(iu_subset):
    j = iu_xray(iu_subset["xml"], images=iu_subset["images"], labels="labeler")
    rep = j.report
    assert rep.images_found == iu_subset["n_images"] + 3
    assert rep.records == rep.joined == iu_subset["n_images"]
    no_image = {rid for rid, _ in rep.reports_without_image}
    assert iu_subset["dropped"] <= no_image  # every report whose images are gone is counted, named
    without_parent = {r.image_id for r in iu_subset["reports_only"].records if not r.meta["images"]}
    assert no_image == iu_subset["dropped"] | without_parent
    assert rep.images_without_report == [f"CXR99999_{k}_IM-9999-1001" for k in range(3)]
    for r in j.records:
        assert r.path.is_file() and r.path.name == r.image_id and r.report.id == r.patient
        assert r.image_id[:-4] in r.meta["images"] if "images" in r.meta else True
    by_report: dict[str, list] = {}
    for r in j.records:
        by_report.setdefault(r.patient, []).append(r.meta["view_index"])
    assert all(v == list(range(len(v))) for v in by_report.values())  # the XML's order: 0, 1, ...
    ds = CXRDataset(j.with_images(), j.class_names, size=32)
    assert len(ds) == rep.records and ds[0]["image"].shape == (1, 32, 32)
    with pytest.raises(FileNotFoundError, match="have no image file") as info:
        iu_xray(iu_subset["xml"], images=iu_subset["images"], labels="none", missing="fail")
    assert sorted(iu_subset["dropped"])[0] in str(info.value) or "and" in str(info.value)
    with pytest.raises(ValueError, match="report but no image"):
        CXRDataset(iu_subset["reports_only"].records, iu_subset["reports_only"].class_names, size=32)
    with pytest.raises(FileNotFoundError, match="image folder"):
        iu_xray(iu_subset["xml"], images=iu_subset["images"] / "nope")


def test_r2gen_split_real_data(tmp_path):
    j = r2gen_iu_xray(shared(*R2GEN), labels="none")
    assert {k: len(v) for k, v in j.by_split().items()} == {"train": 2069, "val": 296, "test": 590}
    # its text is the XML's Findings, report for report
    xml = iu_xray(shared(*IU), labels="none")
    findings = {im.rsplit("-", 1)[0]: r.report.findings for r in xml.records for im in r.meta["images"]}
    assert all(findings[r.image_id] == " ".join(r.report.findings.split()) for r in j.records)
    # with R2Gen's image layout: studies whose images are missing are counted
    d = json.loads(shared(*R2GEN).read_text())
    for e in d["test"][:10]:
        for ip in e["image_path"]:
            _png(tmp_path / "images" / ip)
    joined = r2gen_iu_xray(shared(*R2GEN), images=tmp_path / "images", labels="none")
    assert joined.report.records == joined.report.joined == 10 and joined.report.images_found == 20
    assert len(joined.report.reports_without_image) == 2955 - 10
    assert all(joined.split[r.image_id] == "test" and len(r.meta["image_paths"]) == 2 for r in joined.records)
    with_labels = r2gen_iu_xray(shared(*R2GEN), reports=shared(*IU), labels="mesh")
    assert np.isfinite(np.stack([r.labels for r in with_labels.records])).mean() > 0.9
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train": []}))
    with pytest.raises(ValueError, match="needs the keys train, val and test"):
        r2gen_iu_xray(bad)


def test_mimic_reports_joined_by_study(tmp_path):
    reports, jpg = tmp_path / "reports" / "files", tmp_path / "jpg"
    studies = {("10000001", "50000001"): ["d1", "d2"], ("10000001", "50000002"): ["d3"],
               ("10000002", "50000003"): []}  # a study whose images are missing
    for (subj, study), dicoms in studies.items():
        p = reports / f"p{subj[:2]}" / f"p{subj}" / f"s{study}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("FINDINGS: Small left pleural effusion.\nIMPRESSION: Effusion." if study != "50000002"
                     else "FINDINGS: No pneumothorax.\nIMPRESSION: No acute process.")
        for d in dicoms:
            q = jpg / "files" / f"p{subj[:2]}" / f"p{subj}" / f"s{study}" / f"{d}.jpg"
            q.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((20, 20), np.uint8)).save(q)
    extra = jpg / "files" / "p10" / "p10000009" / "s59999999" / "d9.jpg"
    extra.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(extra)
    with open(jpg / "mimic-cxr-2.0.0-metadata.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dicom_id", "ViewPosition"])
        w.writerows([["d1", "PA"], ["d2", "LATERAL"], ["d3", "AP"], ["d9", "PA"]])
    j = mimic_cxr_reports(reports, images=jpg, views=("PA", "AP"))
    rep = j.report
    assert rep.reports_read == 3 and rep.records == rep.joined == 2
    assert [r.meta["view"] for r in j.records] == ["PA", "AP"] and rep.skipped == {"view not in ['AP', 'PA']": 1}
    assert [rid for rid, _ in rep.reports_without_image] == ["s50000003"]
    assert rep.images_without_report == [str(extra)]
    eff = j.class_names.index("Pleural Effusion")
    assert j.records[0].labels[eff] == 1.0 and j.records[1].labels[eff] == 0.0
    alone = mimic_cxr_reports(reports)
    assert alone.report.records == 3 and all(r.path is None for r in alone.records)
    with pytest.raises(ValueError, match="no MeSH"):
        mimic_cxr_reports(reports, labels="mesh")


def test_csv_reports(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    with open(tmp_path / "r.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "findings", "impression", "Nodule"])
        w.writerows([["a.png", "Small nodule.", "Nodule.", "1"], ["b.png", "", "", "0"],
                     ["c.png", "Clear.", "Normal.", "0"]])
    j = csv_reports(tmp_path / "r.csv", text_cols="findings,impression", image_col="image", label_cols=["Nodule"])
    rep = j.report
    assert rep.reports_read == 3 and rep.records == rep.joined == 1
    assert rep.reports_unreadable[0][0] == "b.png" and "empty text" in rep.reports_unreadable[0][1]
    assert rep.reports_without_image[0][0] == "c.png"
    r = j.records[0]
    assert r.report.findings == "Small nodule." and r.report.impression == "Nodule." and r.labels.tolist() == [1.0]
    with pytest.raises(ValueError, match=r"column\(s\) \['report'\] not found"):
        csv_reports(tmp_path / "r.csv", text_cols="report")
