"""`chexradi.reports`: reading reports (IU X-ray XML, CSV, .txt), errors, parallel labelling, the CLI.

Also the weak-supervision round trip: ``chexradi label-reports`` writes a table that
``chexradi.data.sources.open_data("csv:...")`` reads directly.
"""
from __future__ import annotations

import csv
import gzip
import io
import math
import random
import tarfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pytest
from click.testing import CliRunner, Result

import chexradi.cli
import chexradi.reports
from chexradi.cli import cli
from chexradi.data.datasets import CHESTXRAY14_CLASSES, CHEXPERT_CLASSES
from chexradi.reports import Report, ReportError, SourceError, label_reports, read_reports

CX14_HEADER = ["Image", "report", "split", *CHESTXRAY14_CLASSES, "No Finding", "Normal"]


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def iu_xml(uid: Optional[str], findings: str = "", impression: str = "", *, indication: str = "Cough.",
           comparison: str = "None.", mesh: Sequence[str] = ("normal",), images: Sequence[str] = ()) -> str:
    """An OpenI ecgen-radiology document in the layout of NLMCXR_reports.tgz."""
    uid_el = f'  <uId id="{uid}"/>\n' if uid is not None else ""
    mesh_el = "".join(f"    <major>{m}</major>\n" for m in mesh)
    imgs = "".join(f'  <parentImage id="{i}">\n    <figureId>F{k + 1}</figureId>\n'
                   f'    <caption>Xray Chest PA and Lateral</caption>\n'
                   f'    <panel type="single"><url>/hadoop/storage/radiology/extract/{i}.jpg</url></panel>\n'
                   f'  </parentImage>\n' for k, i in enumerate(images))
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<eCitation>\n  <meta type="rr"/>\n{uid_el}'
            f'  <pmcId id="1"/>\n  <docSource>CXR</docSource>\n'
            f'  <MedlineCitation Owner="Indiana University" Status="supplied by publisher">\n'
            f'    <Article PubModel="Electronic">\n'
            f'      <ArticleTitle>Indiana University Chest X-ray Collection</ArticleTitle>\n'
            f'      <Abstract>\n'
            f'        <AbstractText Label="COMPARISON">{comparison}</AbstractText>\n'
            f'        <AbstractText Label="INDICATION">{indication}</AbstractText>\n'
            f'        <AbstractText Label="FINDINGS">{findings}</AbstractText>\n'
            f'        <AbstractText Label="IMPRESSION">{impression}</AbstractText>\n'
            f'      </Abstract>\n    </Article>\n  </MedlineCitation>\n'
            f'  <MeSH>\n{mesh_el}  </MeSH>\n{imgs}</eCitation>\n')


def write_iu(folder: Path, n: int, findings: str, impression: str = "", **kw: Any) -> Path:
    """``folder/<n>.xml`` for report ``CXR<n>`` with images ``CXR<n>_1_IM-<n>-1001`` (and ``-2001`` ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    kw.setdefault("images", [f"CXR{n}_1_IM-{n:04d}-1001"])
    p = folder / f"{n}.xml"
    p.write_text(iu_xml(f"CXR{n}", findings, impression, **kw), encoding="utf-8")
    return p


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def as_dicts(path: Path) -> list[dict[str, str]]:
    header, rows = read_table(path)
    return [dict(zip(header, r)) for r in rows]


def run(*args: Any, code: int = 0) -> Result:
    res = CliRunner().invoke(cli, ["label-reports", *(str(a) for a in args)], catch_exceptions=False)
    assert res.exit_code == code, f"exit {res.exit_code}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return res


def items(source: Any, *args: Any, **kw: Any) -> list:
    return list(read_reports(source, *args, **kw))


def only_reports(seq: list) -> list[Report]:
    assert all(isinstance(x, Report) for x in seq), [x for x in seq if isinstance(x, ReportError)]
    return seq


# Sentences with a known label each (positive, negated, uncertain), for generated reports.
SENTENCES: list[tuple[str, dict[str, int]]] = [
    ("Mild cardiomegaly.", {"Cardiomegaly": 1}),
    ("No pneumothorax.", {"Pneumothorax": 0}),
    ("Possible pneumonia in the right lower lobe.", {"Pneumonia": -1}),
    ("Small left pleural effusion.", {"Effusion": 1}),
    ("No focal consolidation, effusion, or pneumothorax.", {"Consolidation": 0, "Effusion": 0, "Pneumothorax": 0}),
    ("Cannot exclude a small pulmonary nodule.", {"Nodule": -1}),
    ("Heart size is normal.", {"Cardiomegaly": 0}),
    ("Hyperinflated lungs consistent with emphysema.", {"Emphysema": 1}),
    ("Bibasilar atelectasis.", {"Atelectasis": 1}),
    ("No pulmonary edema.", {"Edema": 0}),
    ("Interstitial infiltrates may represent edema.", {"Infiltration": 1, "Edema": -1}),
    ("There is a 3 cm mass in the left upper lobe.", {"Mass": 1}),
    ("Small hiatal hernia.", {"Hernia": 1}),
    ("Apical pleural thickening.", {"Pleural_Thickening": 1}),
    ("Chronic fibrosis in both bases.", {"Fibrosis": 1}),
    ("No evidence of atelectasis or mass.", {"Atelectasis": 0, "Mass": 0}),
    ("Questionable nodule in the right apex.", {"Nodule": -1}),
    ("Lungs are clear.", {}),
    ("No acute cardiopulmonary abnormality.", {}),
    ("Findings suggest pneumonia.", {"Pneumonia": -1}),
    ("No hernia.", {"Hernia": 0}),
    ("No emphysema or fibrosis.", {"Emphysema": 0, "Fibrosis": 0}),
    ("No infiltrate.", {"Infiltration": 0}),
    ("Pleural thickening is not seen.", {"Pleural_Thickening": 0}),
]
_RANK = {1: 3, -1: 2, 0: 1}


def expected(sentences: Sequence[str]) -> dict[str, Optional[int]]:
    """Labels of a report made of template sentences: positive > uncertain > negated > blank."""
    table = dict(SENTENCES)
    out: dict[str, Optional[int]] = {c: None for c in CHESTXRAY14_CLASSES}
    for s in sentences:
        for k, v in table[s].items():
            if out[k] is None or _RANK[v] > _RANK[out[k]]:  # type: ignore[index]
                out[k] = v
    out["No Finding"] = 0 if any(v in (1, -1) for v in out.values()) else 1
    out["Normal"] = out["No Finding"]  # no template sentence names a finding beyond the labels
    return out


def generated(folder: Path, n: int, seed: int = 0) -> dict[str, dict[str, Optional[int]]]:
    """``n`` IU reports of 1-4 template sentences (split over Findings and Impression); id -> expected labels."""
    rng = random.Random(seed)
    want = {}
    for i in range(1, n + 1):
        picks = [s for s, _ in rng.sample(SENTENCES, rng.randint(1, 4))]
        cut = rng.randint(0, len(picks))
        write_iu(folder, i, " ".join(picks[:cut]), " ".join(picks[cut:]),
                 indication="Rule out pneumothorax and pneumonia.")  # never read: not Findings/Impression
        want[f"CXR{i}"] = expected(picks)
    return want


# ------------------------------------------------------------------------------------------------
# readers: IU X-ray / OpenI XML
# ------------------------------------------------------------------------------------------------
def test_iu_folder_natural_order_ids_images_mesh(tmp_path: Path) -> None:
    root = tmp_path / "NLMCXR_reports"
    eg = root / "ecgen-radiology"
    for n in (10, 2, 1):
        write_iu(eg, n, f"Finding {n}.\n   Second   line.", f"Impression {n}.", mesh=["Cardiomegaly/mild", "Opacity"],
                 images=[f"CXR{n}_1_IM-0001-1001", f"CXR{n}_1_IM-0001-2001"])
    (eg / "notes.txt").write_text("not a report")  # a folder of XML: .txt files are not read
    got = only_reports(items(root))
    assert [r.id for r in got] == ["CXR1", "CXR2", "CXR10"]  # natural order: 2 before 10
    r = got[2]
    assert r.images == ["CXR10_1_IM-0001-1001", "CXR10_1_IM-0001-2001"]
    assert r.meta["mesh"] == ["Cardiomegaly/mild", "Opacity"]
    assert r.source == str(eg / "10.xml")
    # every AbstractText as "LABEL: text", white space collapsed, so the sections are found
    assert r.text == ("COMPARISON: None.\n\nINDICATION: Cough.\n\nFINDINGS: Finding 10. Second line.\n\n"
                      "IMPRESSION: Impression 10.")
    assert chexradi.reports.sources.guess_format(root) == "iu-xml"


def test_iu_single_file_and_missing_uid(tmp_path: Path) -> None:
    p = write_iu(tmp_path, 7, "Mild cardiomegaly.", "No acute disease.", images=["CXR7_1_IM-0001-1001"],
                 mesh=["Cardiomegaly/mild"])
    (r,) = only_reports(items(p))
    assert (r.id, r.images, r.meta["mesh"], r.source) == \
        ("CXR7", ["CXR7_1_IM-0001-1001"], ["Cardiomegaly/mild"], str(p))
    # a document without uId falls back to the file's stem; one without parentImage has no image
    q = tmp_path / "orphan-42.xml"
    q.write_text(iu_xml(None, "No pneumothorax.", images=()), encoding="utf-8")
    (r,) = only_reports(items(q))
    assert (r.id, r.images) == ("orphan-42", [])


@pytest.mark.parametrize("name,mode", [("NLMCXR_reports.tgz", "w:gz"), ("reports.tar.gz", "w:gz"),
                                       ("reports.tar", "w")])
def test_iu_archive_matches_folder(tmp_path: Path, name: str, mode: str) -> None:
    folder = tmp_path / "ecgen-radiology"
    want = generated(folder, 12, seed=3)
    archive = tmp_path / name
    with tarfile.open(archive, mode) as tf:
        for n in (10, 2, 12, 1, 3, 4, 5, 6, 7, 8, 9, 11):  # stored out of order
            tf.add(folder / f"{n}.xml", arcname=f"ecgen-radiology/{n}.xml")
        info = tarfile.TarInfo("ecgen-radiology/README")  # not XML: ignored
        info.size = 3
        tf.addfile(info, io.BytesIO(b"hi\n"))
    got = only_reports(items(archive))
    assert [r.id for r in got] == [f"CXR{n}" for n in range(1, 13)]
    assert got[9].source == f"{archive}:ecgen-radiology/10.xml"
    assert got[9].images == ["CXR10_1_IM-0010-1001"]
    assert [r.text for r in got] == [r.text for r in items(folder)]
    table = label_reports(archive)
    assert table.errors == [] and table.formats == {"iu-xml"}
    assert {r["id"]: r["labels"] for r in table.reports} == want


# ------------------------------------------------------------------------------------------------
# readers: CSV and text files
# ------------------------------------------------------------------------------------------------
def test_csv_default_text_column_and_ids(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "r.csv", ["study_id", "report", "age"],
                  [["s1", "Mild cardiomegaly.", "60"], ["s2", "No pneumothorax.", "70"]])
    got = only_reports(items(p))
    assert [(r.id, r.text, r.images) for r in got] == \
        [("s1", "Mild cardiomegaly.", ["s1"]), ("s2", "No pneumothorax.", ["s2"])]
    assert got[1].source == f"{p} line 3"
    # without an id column: the row number; the text column "text" is a default too
    p2 = write_csv(tmp_path / "t.csv", ["text", "x"], [["Small hiatal hernia.", "1"], ["", ""], ["No hernia.", "2"]])
    got = only_reports(items(p2))
    assert [(r.id, r.text) for r in got] == [("row2", "Small hiatal hernia."), ("row4", "No hernia.")]
    # --id-col / --image-col
    p3 = write_csv(tmp_path / "u.csv", ["acc", "file", "report"], [["a1", "img/a1.jpg", "Bibasilar atelectasis."]])
    (r,) = only_reports(items(p3, id_col="acc", image_col="file"))
    assert (r.id, r.images) == ("a1", ["img/a1.jpg"])


def test_csv_text_col_sections_and_gz(tmp_path: Path) -> None:
    rows = [["1", "Mild cardiomegaly.", "No pneumothorax."], ["2", "", "Possible pneumonia."],
            ["3", "Lungs are clear.", ""]]
    for name in ("r.csv", "r.csv.gz"):
        p = write_csv(tmp_path / name, ["id", "findings", "impression"], rows)
        assert chexradi.reports.sources.guess_format(p) == "csv"
        got = only_reports(items(p, text_col="findings, impression"))
        assert [r.text for r in got] == ["FINDINGS: Mild cardiomegaly.\n\nIMPRESSION: No pneumothorax.",
                                         "IMPRESSION: Possible pneumonia.", "FINDINGS: Lungs are clear."]
        table = label_reports(p, text_col="findings,impression")
        assert table.errors == []
        labels = [r["labels"] for r in table.reports]
        assert (labels[0]["Cardiomegaly"], labels[0]["Pneumothorax"], labels[0]["No Finding"]) == (1, 0, 0)
        assert (labels[1]["Pneumonia"], labels[1]["No Finding"]) == (-1, 0)
        assert labels[2] == {c: None for c in CHESTXRAY14_CLASSES} | {"No Finding": 1, "Normal": 1}


def test_txt_folder_and_file(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    for rel, text in [("a/10.txt", "No pneumothorax."), ("a/2.txt", "Mild cardiomegaly."), ("a/1.txt", "Lungs clear."),
                      ("b.txt", "Small hiatal hernia.")]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    (root / "c.txt").write_bytes("Caf\xe9 patient: no effusion.".encode("latin-1"))  # not UTF-8: read as latin-1
    got = only_reports(items(root))
    assert [r.id for r in got] == ["a/1", "a/2", "a/10", "b", "c"]
    assert [r.images for r in got][:2] == [["a/1"], ["a/2"]]
    assert got[4].text == "Caf\xe9 patient: no effusion."
    (r,) = only_reports(items(root / "a" / "10.txt"))
    assert (r.id, r.text, r.source) == ("10", "No pneumothorax.", str(root / "a" / "10.txt"))


# ------------------------------------------------------------------------------------------------
# per-report errors: the others go on
# ------------------------------------------------------------------------------------------------
def test_bad_xml_reports_are_errors_and_the_run_continues(tmp_path: Path) -> None:
    eg = tmp_path / "eg"
    write_iu(eg, 1, "Mild cardiomegaly.")
    (eg / "2.xml").write_text('<eCitation><uId id="CXR2"/><Abstract>', encoding="utf-8")  # cut short
    write_iu(eg, 3, "", "", indication="", comparison="")  # every AbstractText empty
    (eg / "4.xml").write_text("<eCitation><uId id='CXR4'/><MeSH/></eCitation>", encoding="utf-8")  # no AbstractText
    write_iu(eg, 5, "No pneumothorax.")
    got = items(eg)
    assert [type(x).__name__ for x in got] == ["Report", "ReportError", "ReportError", "ReportError", "Report"]
    e2, e3, e4 = got[1:4]
    assert (e2.id, e2.where) == ("2", str(eg / "2.xml"))
    assert e2.message.startswith("not well-formed XML (") and "re-extract the file" in e2.message
    assert (e3.id, e3.where) == ("CXR3", str(eg / "3.xml"))
    assert e3.message == "the report has no text (every AbstractText is empty); nothing to label."
    assert (e4.id, e4.where) == ("CXR4", str(eg / "4.xml"))
    assert "no AbstractText element" in e4.message and "--format" in e4.message

    table = label_reports(eg)
    assert [r["id"] for r in table.reports] == ["CXR1", "CXR5"]
    assert [(e.id, e.where) for e in table.errors] == [(e.id, e.where) for e in (e2, e3, e4)]


def test_empty_csv_row_and_empty_txt(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "r.csv", ["id", "report"],
                  [["a", "No pneumothorax."], ["b", "   "], ["c", "Mild cardiomegaly."]])
    table = label_reports(p)
    assert [r["id"] for r in table.reports] == ["a", "c"]
    (e,) = table.errors
    assert (e.id, e.where) == ("b", f"{p} line 3")
    assert e.message == "empty report text in column(s) report; nothing to label."

    root = tmp_path / "notes"
    root.mkdir()
    (root / "1.txt").write_text("No pneumothorax.")
    (root / "2.txt").write_text(" \n\t.. \n")
    (root / "3.txt").write_text("Mild cardiomegaly.")
    table = label_reports(root)
    assert [r["id"] for r in table.reports] == ["1", "3"]
    (e,) = table.errors
    assert (e.id, e.where, e.message) == ("2", str(root / "2.txt"), "the file has no text; nothing to label.")


def test_report_without_findings_or_impression_text_is_an_error(tmp_path: Path) -> None:
    eg = tmp_path / "eg"
    write_iu(eg, 1, "Mild cardiomegaly.")
    write_iu(eg, 2, "", "", indication="Pneumothorax?")  # only Comparison and Indication: nothing to read
    table = label_reports(eg)
    assert [r["id"] for r in table.reports] == ["CXR1"]
    (e,) = table.errors
    assert (e.id, e.where) == ("CXR2", str(eg / "2.xml")) and "no text to read" in e.message


def test_duplicate_report_id(tmp_path: Path) -> None:
    eg = tmp_path / "eg"
    write_iu(eg, 1, "Mild cardiomegaly.")
    dup = eg / "1b.xml"
    dup.write_text(iu_xml("CXR1", "No pneumothorax."), encoding="utf-8")
    write_iu(eg, 2, "No hernia.")
    p = write_csv(tmp_path / "more.csv", ["id", "report"], [["CXR2", "Small hiatal hernia."], ["x", "No edema."]])
    table = label_reports([eg, p])
    assert [r["id"] for r in table.reports] == ["CXR1", "CXR2", "x"]
    assert table.reports[0]["labels"]["Cardiomegaly"] == 1  # the first one is kept
    assert table.reports[1]["labels"]["Hernia"] == 0
    assert [(e.id, e.where) for e in table.errors] == [("CXR1", str(dup)), ("CXR2", f"{p} line 2")]
    assert table.errors[0].message == ("report id 'CXR1' appears twice; the later one is left out. Give each report "
                                       "its own id.")
    assert table.formats == {"iu-xml", "csv"}


# ------------------------------------------------------------------------------------------------
# whole-source errors
# ------------------------------------------------------------------------------------------------
def _tgz_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _source(tmp_path: Path, kind: str) -> tuple[Path, dict[str, Any]]:
    if kind == "missing":
        return tmp_path / "nope" / "reports.tgz", {}
    if kind == "csv-no-named-col":
        return write_csv(tmp_path / "r.csv", ["id", "findings"], [["1", "Mild cardiomegaly."]]), \
            {"text_col": "findings,impression"}
    if kind == "csv-no-default-col":
        return write_csv(tmp_path / "r.csv", ["id", "narrative"], [["1", "Mild cardiomegaly."]]), {}
    if kind == "csv-empty":
        (tmp_path / "r.csv").write_bytes(b"")
        return tmp_path / "r.csv", {}
    if kind == "empty-folder":
        (tmp_path / "empty" / "sub").mkdir(parents=True)
        (tmp_path / "empty" / "x.png").write_bytes(b"\x89PNG")
        return tmp_path / "empty", {}
    if kind == "xml-folder-empty":
        (tmp_path / "eg").mkdir()
        return tmp_path / "eg", {"format": "iu-xml"}
    if kind == "corrupt-tgz":
        (tmp_path / "NLMCXR_reports.tgz").write_bytes(bytes(random.Random(0).getrandbits(8) for _ in range(4000)))
        return tmp_path / "NLMCXR_reports.tgz", {}
    if kind == "truncated-tgz":
        members = {f"ecgen-radiology/{n}.xml": iu_xml(f"CXR{n}", "Mild cardiomegaly. " * 200).encode()
                   for n in range(1, 40)}
        members.update({f"ecgen-radiology/pad{n}.bin": random.Random(n).randbytes(20000) for n in range(5)})
        data = _tgz_bytes(members)
        (tmp_path / "cut.tgz").write_bytes(data[: len(data) // 2])
        return tmp_path / "cut.tgz", {}
    if kind == "tgz-without-xml":
        (tmp_path / "r.tgz").write_bytes(_tgz_bytes({"a/readme.txt": b"hello"}))
        return tmp_path / "r.tgz", {}
    raise AssertionError(kind)


WHOLE_SOURCE = {
    "missing": r"^{src}: no such file or folder; check the path\.$",
    "csv-no-named-col": r"^{src}: no text column 'impression'; its columns are id, findings\. Pass --text-col with "
                        r"the report column\(s\)\.$",
    "csv-no-default-col": r"^{src}: no report text column \(looked for report, text, .*\); its columns are id, "
                          r"narrative\. Pass --text-col NAME",
    "csv-empty": r"^{src}: empty CSV \(no header row\)\.$",
    "empty-folder": r"^{src}: no \.xml or \.txt reports in this folder; pass --format, or the right folder\.$",
    "xml-folder-empty": r"^{src}: no \.xml reports found; pass the ecgen-radiology folder or its \.tgz\.$",
    "corrupt-tgz": r"^{src}: not a readable tar archive \(.*\); re-download it, or extract it and pass the folder\.$",
    "truncated-tgz": r"^{src}: (the archive is damaged \(.*\); re-download it|not a readable tar archive \(.*\))",
    "tgz-without-xml": r"^{src}: no \.xml files in the archive\.$",
}


@pytest.mark.parametrize("kind", sorted(WHOLE_SOURCE))
def test_whole_source_errors(tmp_path: Path, kind: str) -> None:
    import re

    src, kw = _source(tmp_path, kind)
    pattern = WHOLE_SOURCE[kind].format(src=re.escape(str(src)))
    with pytest.raises(SourceError) as info:
        items(src, kw.get("format"), text_col=kw.get("text_col"))
    assert re.search(pattern, str(info.value), flags=re.S), str(info.value)
    # via label_reports: an error naming the source, and the other sources still labelled
    good = write_iu(tmp_path / "good", 1, "Mild cardiomegaly.")
    table = label_reports([src, good], **kw)
    assert [r["id"] for r in table.reports] == ["CXR1"]
    (e,) = table.errors
    assert (e.id, e.where) == ("", str(src)) and re.search(pattern, f"{e.where}: {e.message}", flags=re.S), e.message
    assert not e.message.startswith(str(src)) and "\n" not in e.message  # the path once, on one line


def test_unknown_format_and_csv_folder(tmp_path: Path) -> None:
    p = tmp_path / "reports.json"
    p.write_text("{}")
    with pytest.raises(SourceError, match=r"cannot tell the format from the name; pass --format iu-xml, csv or txt"):
        items(p)
    with pytest.raises(SourceError, match=r"unknown report format 'json'; use one of iu-xml, csv, txt"):
        items(p, "json")
    with pytest.raises(SourceError, match=r"is a folder; --format csv needs the CSV file"):
        items(tmp_path, "csv")


# ------------------------------------------------------------------------------------------------
# many reports: labels, jobs, evidence
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Optional[int]]]]:
    folder = tmp_path_factory.mktemp("many") / "ecgen-radiology"
    want = generated(folder, 150, seed=11)
    (folder / "151.xml").write_text("<eCitation><uId id='CXR151'/>", encoding="utf-8")  # a read error in the stream
    (folder / "152.xml").write_text(iu_xml("CXR7", "Mild cardiomegaly."), encoding="utf-8")  # duplicate id
    return folder, want


def test_generated_reports_get_the_expected_labels(many: tuple[Path, dict]) -> None:
    folder, want = many
    table = label_reports(folder)
    assert [r["id"] for r in table.reports] == [f"CXR{i}" for i in range(1, 151)]
    bad = {r["id"]: (r["labels"], want[r["id"]]) for r in table.reports if r["labels"] != want[r["id"]]}
    assert not bad, bad
    assert [(e.id, Path(e.where).name) for e in table.errors] == [("151", "151.xml"), ("CXR7", "152.xml")]
    assert table.columns == tuple(CX14_HEADER[3:])


def test_jobs_2_gives_the_same_table_as_jobs_1(many: tuple[Path, dict]) -> None:
    folder, _ = many
    one = label_reports(folder, jobs=1, explain=True)
    two = label_reports(folder, jobs=2, explain=True)
    assert len(one.reports) == 150
    assert two.reports == one.reports  # ids, images, sources, labels and meta, in order
    assert [list(r["labels"]) for r in two.reports] == [list(r["labels"]) for r in one.reports]  # column order
    assert two.errors == one.errors
    assert two.evidence == one.evidence and list(two.evidence) == list(one.evidence)


def test_jobs_2_error_order_with_read_and_label_errors(tmp_path: Path) -> None:
    eg = tmp_path / "eg"
    for i in range(1, 141):
        write_iu(eg, i, "Mild cardiomegaly.")
    write_iu(eg, 5, "", "", indication="Pneumothorax?")  # a labelling error in the first chunk
    (eg / "130.xml").write_text("<eCitation", encoding="utf-8")  # a read error in the third chunk
    one = label_reports(eg, jobs=1)
    assert [e.id for e in one.errors] == ["CXR5", "130"]
    assert label_reports(eg, jobs=2).errors == one.errors


def test_explain_evidence_spans_are_the_mentions(many: tuple[Path, dict]) -> None:
    folder, _ = many
    texts: dict[str, str] = {}
    for r in read_reports(folder):
        if isinstance(r, Report):
            texts.setdefault(r.id, r.text)  # the first of a duplicate id is the one labelled
    table = label_reports(folder, explain=True)
    plain = label_reports(folder, explain=False)
    assert plain.evidence == {} and [r["labels"] for r in plain.reports] == [r["labels"] for r in table.reports]
    assert set(table.evidence) == {r["id"] for r in table.reports}
    n = 0
    for r in table.reports:
        text, ev = texts[r["id"]], table.evidence[r["id"]]
        for e in ev:
            assert text[e.start:e.end] == e.mention, (r["id"], e)
            assert e.mention and e.mention.lower() in e.sentence.lower() and e.sentence in text, (r["id"], e)
            assert e.section in ("findings", "impression"), e  # Indication is never read
            assert e.value in (1, 0, -1)
            n += 1
        # every decision is explained: the value of each label is the best of its evidence
        for c in CHESTXRAY14_CLASSES:
            vals = [e.value for e in ev if e.label == c]
            assert r["labels"][c] == (max(vals, key=_RANK.__getitem__) if vals else None), (r["id"], c, vals)
    assert n > 150


# ------------------------------------------------------------------------------------------------
# the CLI
# ------------------------------------------------------------------------------------------------
def test_cli_offers_the_formats_the_reader_reads() -> None:
    res = CliRunner().invoke(chexradi.cli.cli, ["label-reports", "--help"])
    assert all(f in res.output for f in chexradi.reports.FORMATS)


def _small_iu(folder: Path) -> Path:
    write_iu(folder, 1, "Mild cardiomegaly. No pneumothorax.", "Possible pneumonia.",
             images=["CXR1_1_IM-0001-1001", "CXR1_1_IM-0001-2001"])
    write_iu(folder, 2, "Lungs are clear.", "No acute cardiopulmonary abnormality.", images=["CXR2_1_IM-0002-1001"])
    write_iu(folder, 3, "No pneumothorax.", "", images=[])  # names no image
    return folder


def test_cli_iu_labels_csv(tmp_path: Path) -> None:
    src = _small_iu(tmp_path / "eg")
    out = tmp_path / "out" / "labels.csv"
    res = run(src, "--out", out)
    header, rows = read_table(out)
    assert header == CX14_HEADER
    assert [r[:2] for r in rows] == [["CXR1_1_IM-0001-1001.png", "CXR1"], ["CXR1_1_IM-0001-2001.png", "CXR1"],
                                     ["CXR2_1_IM-0002-1001.png", "CXR2"]]
    r1 = dict(zip(header, rows[0]))
    assert (r1["Cardiomegaly"], r1["Pneumothorax"], r1["Pneumonia"], r1["No Finding"], r1["Hernia"]) == \
        ("1", "0", "-1", "0", "")
    assert rows[1][2:] == rows[0][2:]  # one report: same split, same labels
    r2 = dict(zip(header, rows[2]))
    assert r2["No Finding"] == "1" and all(r2[c] == "" for c in CHESTXRAY14_CLASSES)
    assert "labelled 3 reports" in res.stdout and f"wrote 3 rows to {out}" in res.stdout
    assert "1 reports name no image" in res.stdout
    assert res.stderr == ""
    assert not (tmp_path / "out" / "labels.errors.csv").exists()
    assert not (tmp_path / "out" / "labels.evidence.csv").exists()
    # --rows report: one row per report (the first image, or the id); --image-suffix
    run(src, "--out", out, "--rows", "report", "--image-suffix", ".jpg", "-q")
    rows = read_table(out)[1]
    assert [r[1] for r in rows] == ["CXR1", "CXR2", "CXR3"]  # CXR3 names no image but has its row
    assert [r[0] for r in rows[:2]] == ["CXR1_1_IM-0001-1001.jpg", "CXR2_1_IM-0002-1001.jpg"]
    assert {c: v for c, v in zip(CX14_HEADER[3:], rows[2][3:]) if v} == {"Pneumothorax": "0", "No Finding": "1",
                                                                             "Normal": "1"}


def test_cli_csv_and_txt_have_no_suffix(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "r.csv", ["study_id", "file", "findings", "impression"],
                  [["s1", "a/s1.jpg", "Mild cardiomegaly.", ""], ["s2", "a/s2.jpg", "", "No pneumothorax."]])
    out = tmp_path / "labels.csv"
    res = run(p, "--text-col", "findings,impression", "--image-col", "file", "--out", out, "-q")
    assert res.stdout == ""
    assert [(r["Image"], r["report"], r["Cardiomegaly"], r["Pneumothorax"]) for r in as_dicts(out)] == \
        [("a/s1.jpg", "s1", "1", ""), ("a/s2.jpg", "s2", "", "0")]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "n1.txt").write_text("Small hiatal hernia.")
    run(notes, "--out", out, "--format", "txt", "--rows", "report", "-q")
    assert [(r["Image"], r["report"], r["Hernia"]) for r in as_dicts(out)] == [("n1", "n1", "1")]


def test_cli_explain_writes_evidence(tmp_path: Path) -> None:
    src = _small_iu(tmp_path / "eg")
    out = tmp_path / "labels.csv"
    res = run(src, "--out", out, "--explain")
    ev = tmp_path / "labels.evidence.csv"
    header, rows = read_table(ev)
    assert header == ["report", "label", "kind", "value", "section", "start", "end", "mention", "rule", "trigger",
                      "sentence"]
    assert f"evidence: {len(rows)} decisions in {ev}" in res.stdout
    texts = {r.id: r.text for r in read_reports(src)}
    got = {(r[0], r[1], r[2], r[3]) for r in rows}
    assert got == {("CXR1", "Cardiomegaly", "label", "1"), ("CXR1", "Pneumothorax", "label", "0"),
                   ("CXR1", "Pneumonia", "label", "-1"), ("CXR3", "Pneumothorax", "label", "0"),
                   ("CXR2", "Other", "finding", "0")}  # "No acute cardiopulmonary abnormality"
    for r in rows:
        assert texts[r[0]][int(r[5]):int(r[6])] == r[7]
        # positives here are plain mentions; "No", "No acute" and "Possible" decided the others
        assert (r[8], r[9]) == ("mention", "") if r[3] == "1" else r[9] in ("No", "No acute", "Possible"), r


def test_cli_bad_report_exit_1_and_stale_errors_removed(tmp_path: Path) -> None:
    src = _small_iu(tmp_path / "eg")
    bad = src / "4.xml"
    bad.write_text("<eCitation><uId id='CXR4'/>", encoding="utf-8")
    out = tmp_path / "labels.csv"
    errors = tmp_path / "labels.errors.csv"
    res = run(src, "--out", out, code=1)
    assert [r[1] for r in read_table(out)[1]] == ["CXR1", "CXR1", "CXR2"]  # the others are written
    header, rows = read_table(errors)
    assert header == ["report", "where", "message"]
    assert [r[:2] for r in rows] == [["4", str(bad)]] and rows[0][2].startswith("not well-formed XML")
    assert f"1 report or source could not be labelled (listed in {errors}):" in res.stderr
    assert f"  {bad}: not well-formed XML" in res.stderr
    assert "Traceback" not in res.output
    bad.unlink()
    run(src, "--out", out)
    assert not errors.exists()


def test_cli_missing_source_exit_1(tmp_path: Path) -> None:
    src = _small_iu(tmp_path / "eg")
    gone = tmp_path / "gone.tgz"
    out = tmp_path / "labels.csv"
    res = run(src, gone, "--out", out, "-q", code=1)
    assert f"{gone}: no such file or folder; check the path." in res.stderr and "Traceback" not in res.output
    assert len(read_table(out)[1]) == 3
    message = "no such file or folder; check the path."  # the where column names the file
    assert read_table(tmp_path / "labels.errors.csv")[1] == [["", str(gone), message]]


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    src = _small_iu(tmp_path / "eg")
    out = tmp_path / "labels.csv"
    res = run(src, "--out", out, "--labels", "nosuchset", code=2)
    assert res.stderr.startswith("Error: --labels: unknown label set 'nosuchset'")
    assert "chestxray14" in res.stderr and "chexpert" in res.stderr and "Traceback" not in res.output
    assert not out.exists()
    res = run(src, "--out", tmp_path / "missing.yaml", "--labels", tmp_path / "missing.yaml", code=2)
    assert f"label set file {tmp_path / 'missing.yaml'} not found" in res.stderr
    folder = tmp_path / "outdir"
    folder.mkdir()
    res = run(src, "--out", folder, code=2)
    assert str(folder) in res.stderr and "Traceback" not in res.output
    assert list(folder.iterdir()) == []
    res = run(src, "--out", out, "--format", "json", code=2)
    assert "iu-xml" in res.stderr and "csv" in res.stderr and "txt" in res.stderr
    res = run(src, "--out", out, "--jobs", "-1", code=2)
    assert not out.exists()


def test_cli_chexpert_header(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "r.csv", ["id", "report"], [["a", "Large left pleural effusion. No pneumothorax."]])
    out = tmp_path / "labels.csv"
    run(p, "--labels", "chexpert", "--out", out, "-q")
    header, rows = read_table(out)
    assert header[:3] == ["Image", "report", "split"] and header[-2:] == ["No Finding", "Normal"]
    assert sorted(header[3:-2]) == sorted(c for c in CHEXPERT_CLASSES if c != "No Finding")
    row = dict(zip(header, rows[0]))
    assert (row["Pleural Effusion"], row["Pneumothorax"], row["No Finding"], row["Normal"]) == ("1", "0", "0", "0")


def test_cli_user_vocabulary_extends_chestxray14(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "r.csv", ["id", "report"], [["a", "Left Bochdalek defect."], ["b", "Mild cardiomegaly."]])
    vocab = tmp_path / "mine.yaml"
    vocab.write_text("name: mine\nextends: chestxray14\nlabels:\n  Hernia:\n    mention: [bochdalek defect]\n",
                     encoding="utf-8")
    out = tmp_path / "labels.csv"
    run(p, "--out", out, "-q")
    assert [(r["Hernia"], r["Cardiomegaly"]) for r in as_dicts(out)] == [("", ""), ("", "1")]
    res = run(p, "--labels", vocab, "--out", out)
    assert "with 'mine'" in res.stdout
    assert read_table(out)[0] == CX14_HEADER
    assert [(r["Hernia"], r["Cardiomegaly"], r["No Finding"]) for r in as_dicts(out)] == \
        [("1", "", "0"), ("", "1", "0")]


def test_cli_jobs_2_byte_identical(many: tuple[Path, dict], tmp_path: Path) -> None:
    folder, _ = many
    a, b = tmp_path / "a" / "labels.csv", tmp_path / "b" / "labels.csv"
    run(folder, "--out", a, "--jobs", "1", "--explain", "-q", code=1)  # 151.xml and the duplicate: exit 1
    run(folder, "--out", b, "--jobs", "2", "--explain", "-q", code=1)
    for name in ("labels.csv", "labels.evidence.csv", "labels.errors.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert len(read_table(a)[1]) == 150


# ------------------------------------------------------------------------------------------------
# weak supervision: label-reports -> open_data("csv:...")
# ------------------------------------------------------------------------------------------------
ROUND_TRIP = [  # findings, impression: together every ChestX-ray14 label is non-blank somewhere
    ("Mild cardiomegaly. No pneumothorax.", "Possible pneumonia."),
    ("Small left pleural effusion.", "Bibasilar atelectasis."),
    ("No focal consolidation, effusion, or pneumothorax.", "Lungs are clear."),
    ("Interstitial infiltrates may represent edema.", ""),
    ("There is a 3 cm mass in the left upper lobe.", "Cannot exclude a small pulmonary nodule."),
    ("Hyperinflated lungs consistent with emphysema.", "Chronic fibrosis in both bases."),
    ("Apical pleural thickening.", "Small hiatal hernia."),
    ("Heart size is normal.", "No acute cardiopulmonary abnormality."),
    ("No hernia.", "No emphysema or fibrosis."),
    ("Questionable nodule in the right apex.", "No pulmonary edema."),
    ("Lungs are clear.", ""),
    ("No evidence of atelectasis or mass.", "No infiltrate."),
]


def test_round_trip_open_data(tmp_path: Path) -> None:
    from PIL import Image

    from chexradi.data.datasets import csv_dataset
    from chexradi.data.sources import open_data

    eg = tmp_path / "ecgen-radiology"
    data = tmp_path / "iu"
    data.mkdir()
    for n, (f, i) in enumerate(ROUND_TRIP, start=1):
        imgs = [f"CXR{n}_1_IM-{n:04d}-{k}001" for k in range(1, 1 + (n % 2) + 1)]
        write_iu(eg, n, f, i, images=imgs)
        for k, img in enumerate(imgs):
            Image.fromarray(np.full((64, 64), 40 * k + 3 * n, np.uint8), mode="L").save(data / f"{img}.png")
    out = data / "labels.csv"
    run(eg, "--out", out, "-q", "--split", "none")  # every row in train; the split column has its own test
    header, rows = read_table(out)
    assert len(rows) == sum(1 + n % 2 for n in range(1, 13)) == 18
    cells = {v for r in rows for v in r[2:]}
    assert cells == {"1", "0", "-1", ""}

    def code(v: str, uncertain: float) -> float:
        return {"1": 1.0, "0": 0.0, "-1": uncertain, "": math.nan}[v]

    for spec_kw, unc in (({}, math.nan), ({"uncertain": "one"}, 1.0), ({"uncertain": "zero"}, 0.0)):
        splits = open_data(f"csv:{out}", size=64, **spec_kw)
        assert splits.class_names == CHESTXRAY14_CLASSES  # No Finding is not a class by default
        ds = splits.train
        assert len(ds) == 18 and not splits.val and not splits.test
        assert [r.image_id for r in ds.records] == [r[0] for r in rows]
        assert [r.path for r in ds.records] == [data / r[0] for r in rows]
        want = np.array([[code(v, unc) for v in r[2:16]] for r in rows], np.float32)
        np.testing.assert_array_equal(ds.targets, want)  # NaN == NaN here
        item = ds[0]
        assert tuple(item["image"].shape) == (1, 64, 64)
        np.testing.assert_array_equal(item["target"].numpy(), want[0])

    with_nf = (*CHESTXRAY14_CLASSES, "No Finding", "Normal")
    splits = csv_dataset(out, size=64, class_names=with_nf, blank="zero")
    assert splits.class_names == with_nf
    want = np.array([[code(v, math.nan) if v != "" else 0.0 for v in r[2:]] for r in rows], np.float32)
    np.testing.assert_array_equal(splits.train.targets, want)
    assert splits.train.targets[:, -2].tolist() == [float(r[-2]) for r in rows]
    assert splits.train.targets[:, -1].tolist() == [float(r[-1]) for r in rows]


def test_round_trip_numeric_report_ids(tmp_path: Path) -> None:
    from PIL import Image

    from chexradi.data.datasets import csv_dataset

    p = write_csv(tmp_path / "r.csv", ["id", "report"], [["0", "Mild cardiomegaly."], ["1", "No pneumothorax."]])
    for i in "01":
        Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(tmp_path / f"{i}.png")
    out = tmp_path / "labels.csv"
    run(p, "--out", out, "--image-suffix", ".png", "-q")
    assert "report" not in csv_dataset(out, size=8).class_names


# ---------------------------------------------------------------------------------------------
# the split column, and the loop training on mined labels
# ---------------------------------------------------------------------------------------------
def test_split_column_is_per_report_and_stable(tmp_path: Path) -> None:
    from chexradi.reports.batch import split_of

    eg = tmp_path / "eg"
    for n in range(1, 301):
        write_iu(eg, n, "Mild cardiomegaly." if n % 3 else "No pneumothorax.",
                 images=[f"CXR{n}_1_IM-{n:04d}-1001", f"CXR{n}_1_IM-{n:04d}-2001"])
    out = tmp_path / "labels.csv"
    run(eg, "--out", out, "-q")
    rows = as_dicts(out)
    by_report: dict[str, set] = {}
    for r in rows:
        by_report.setdefault(r["report"], set()).add(r["split"])
    assert all(len(v) == 1 for v in by_report.values())  # a report's images stay together
    counts = {s: sum(1 for v in by_report.values() if v == {s}) for s in ("train", "val", "test")}
    assert 180 < counts["train"] < 240 and 15 < counts["val"] < 50 and 35 < counts["test"] < 90, counts
    # the draw depends on the report id only: the same in a run over a subset, in any order
    run(eg / "7.xml", eg / "150.xml", "--out", tmp_path / "two.csv", "-q")
    assert {r["report"]: r["split"] for r in as_dicts(tmp_path / "two.csv")} == \
        {"CXR7": split_of("CXR7", (0.7, 0.1, 0.2)), "CXR150": split_of("CXR150", (0.7, 0.1, 0.2))}
    assert {r["report"]: r["split"] for r in rows if r["report"] in ("CXR7", "CXR150")} == \
        {r["report"]: r["split"] for r in as_dicts(tmp_path / "two.csv")}
    run(eg, "--out", out, "-q", "--split", "0.5,0.5,0")
    assert {r["split"] for r in as_dicts(out)} == {"train", "val"}
    run(eg, "--out", out, "-q", "--split", "none")
    assert "split" not in as_dicts(out)[0]


@pytest.mark.parametrize("bad", ["0.7,0.1", "0.7,0.2,0.2", "0,0.5,0.5", "a,b,c", "-0.1,0.6,0.5"])
def test_bad_split_is_a_usage_error(tmp_path: Path, bad: str) -> None:
    src = write_iu(tmp_path / "eg", 1, "Mild cardiomegaly.")
    res = run(src, "--out", tmp_path / "labels.csv", "--split", bad, code=2)
    assert f"--split {bad}" in res.stderr and "e.g. 0.7,0.1,0.2" in res.stderr
    assert not (tmp_path / "labels.csv").exists()


def test_evidence_file_of_an_earlier_run_is_removed(tmp_path: Path) -> None:
    src = write_iu(tmp_path / "eg", 1, "Mild cardiomegaly.")
    out = tmp_path / "labels.csv"
    run(src, "--out", out, "--explain", "-q")
    assert (tmp_path / "labels.evidence.csv").exists()
    run(src, "--out", out, "-q")
    assert not (tmp_path / "labels.evidence.csv").exists()


def test_iterate_trains_on_mined_labels(tmp_path: Path) -> None:
    """label-reports -> labels.csv next to the images -> `chexradi iterate --data csv:` (one small round)."""
    import json

    from PIL import Image

    from chexradi.data.phantom import make_case

    eg, data = tmp_path / "ecgen-radiology", tmp_path / "iu"
    data.mkdir()
    texts = ["Mild cardiomegaly. No pleural effusion.", "Small left pleural effusion. Heart size is normal.",
             "No pneumothorax, effusion, or focal consolidation.", "Cardiomegaly with bilateral effusions."]
    for n in range(1, 41):
        img = f"CXR{n}_1_IM-{n:04d}-1001"
        write_iu(eg, n, texts[n % 4], images=[img])
        c = make_case(n, size=64, seed=0)
        Image.fromarray((c.image * 255).astype(np.uint8), mode="L").save(data / f"{img}.png")
    run(eg, "--out", data / "labels.csv", "-q", "--split", "0.6,0.2,0.2")
    res = CliRunner().invoke(cli, ["iterate", "--data", f"csv:{data / 'labels.csv'}", "--size", "32", "--model",
                                   "resnet18", "--rounds", "1", "--epochs", "1", "--out", str(tmp_path / "run")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_json["class_names"] == ["Cardiomegaly", "Effusion", "Pneumothorax", "Consolidation"]
    assert set(run_json["counts"]) == {"train", "val", "test"} and sum(run_json["counts"].values()) == 40
