"""Chest X-ray datasets: ChestX-ray14, CheXpert, MIMIC-CXR-JPG and a generic folder + CSV format.

Every loader returns a :class:`Splits` of :class:`CXRDataset` objects whose items are
what :func:`chexradi.train.fit` takes: ``{"image": float32 (1, size, size), "target":
float32 (K,) with NaN for unknown, "index": int}``. Images are read with
:func:`~chexradi.data.readers.read_radiograph` and normalised with
:func:`~chexradi.data.transforms.to_model_input` (the one documented normalisation).

This module reads each source's tables (labels, splits, boxes) into records; what is done
per image at training time (decoding, the cache, box scaling) is in
:mod:`chexradi.data.cxr_dataset`, whose names are importable from here too.

Public API
----------
CHESTXRAY14_CLASSES, BOXED_CLASSES, BBOX_ALIASES, CHEXPERT_CLASSES, MIMIC_CXR_CLASSES

Record
    One image: id, path, labels, patient, boxes (original pixel coordinates), meta.
CXRDataset
    A torch ``Dataset`` over records, with an optional on-disk cache of decoded images.
Splits
    ``.train``, ``.val``, ``.test`` (each a ``CXRDataset`` or None) and ``.class_names``.
chestxray14(root, ...)
    NIH ChestX-ray14 as distributed (``Data_Entry_2017.csv``, ``BBox_List_2017.csv``,
    ``train_val_list.txt``, ``test_list.txt``, ``images/`` or ``images_0XX/images/``).
csv_dataset(csv_path, ...)
    Any folder of images with one CSV row per image (also the phantom's ``labels.csv``).
chexpert(root, ...)
    CheXpert (``train.csv``/``valid.csv``, 14 observations coded 1/0/-1/blank).
mimic_cxr(root, ...)
    MIMIC-CXR-JPG v2.0.0/2.1.0 (official split, per-study CheXpert or NegBio labels coded
    as CheXpert's, ``files/pXX/pSUBJECT/sSTUDY/DICOM.jpg``).

Label codes
-----------
1 positive, 0 negative, blank unknown (NaN; CheXpert, MIMIC-CXR: see ``blank``), -1 uncertain,
mapped by ``uncertain``: ``"nan"`` (U-Ignore, the default: masked out of the loss),
``"zero"`` (U-Zeros) or ``"one"`` (U-Ones), the policies of Irvin et al. (AAAI 2019).
"""
from __future__ import annotations

import csv
import gzip
import logging
import os
import zlib
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from ..names import DERIVED_COLUMNS, NO_FINDING, NORMAL
from .cxr_dataset import (CACHE_DTYPES, ON_ERROR, Box, CXRDataset, Record, Splits, check_choice, check_size,
                          show_paths)

__all__ = [
    "CHESTXRAY14_CLASSES", "BOXED_CLASSES", "BBOX_ALIASES", "CHEXPERT_CLASSES", "NO_FINDING", "NORMAL",
    "DERIVED_COLUMNS", "MIMIC_CXR_CLASSES", "UNCERTAIN_POLICIES", "Record", "CXRDataset", "Splits", "chestxray14",
    "csv_dataset", "chexpert", "mimic_cxr", "read_table", "patient_split",
]

logger = logging.getLogger("chexradi.data.datasets")

PathLike = Union[str, "os.PathLike[str]"]

CHESTXRAY14_CLASSES: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
#: The eight ChestX-ray14 classes with boxes in ``BBox_List_2017.csv``.
BOXED_CLASSES: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
)
#: ``BBox_List_2017.csv`` spells Infiltration "Infiltrate".
BBOX_ALIASES: dict[str, str] = {"Infiltrate": "Infiltration"}
#: The 14 CheXpert observations, in the column order of its CSVs.
CHEXPERT_CLASSES: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
#: The 14 MIMIC-CXR-JPG observations, in the column order of ``mimic-cxr-2.0.0-chexpert.csv.gz``
#: and ``mimic-cxr-2.0.0-negbio.csv.gz`` (alphabetical).
MIMIC_CXR_CLASSES: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
    "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
    "Pneumothorax", "Support Devices",
)
UNCERTAIN_POLICIES = ("nan", "zero", "one")
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
#: ChestX-ray14 boxes are given in the 1024 x 1024 frame of the released images (rows, columns).
CHESTXRAY14_BOX_FRAME = (1024, 1024)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".nrrd", ".nhdr", ".nii", ".nii.gz")  # name endings


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and non-empty rows of a CSV; a name ending in ``.gz`` is decompressed with gzip."""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not a UTF-8 text CSV ({exc}).") from exc
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path} is not a complete gzip file ({exc}); download it again or give the "
                         "uncompressed .csv instead.") from exc
    if not rows:
        raise ValueError(f"{path} is empty; expected a header row and one row per image.")
    return [h.strip() for h in rows[0]], rows[1:]


def _col(header: Sequence[str], names: Sequence[str], path: Path, what: str, required: bool = True) -> Optional[int]:
    low = [h.strip().lower() for h in header]
    for n in names:
        if n.lower() in low:
            return low.index(n.lower())
    if required:
        raise ValueError(f"{path} has no {what} column (looked for {', '.join(map(repr, names))}; "
                         f"header: {', '.join(map(repr, header))}).")
    return None


def _cell(row: Sequence[str], i: Optional[int]) -> str:
    return row[i].strip() if i is not None and i < len(row) else ""


def _parse_findings(text: str, class_names: Sequence[str], where: str) -> np.ndarray:
    labels = np.zeros(len(class_names), np.float32)
    names = [t.strip() for t in text.split("|") if t.strip()]
    if not names:
        raise ValueError(f"{where}: empty 'Finding Labels'; use 'No Finding' for images without findings.")
    for name in names:
        if name == NO_FINDING:
            if len(names) > 1:
                raise ValueError(f"{where}: 'No Finding' together with other labels ({text!r}).")
            continue
        if name not in class_names:
            raise ValueError(f"{where}: unknown label {name!r}; known labels: {', '.join(class_names)} "
                             f"(or {NO_FINDING!r}).")
        labels[list(class_names).index(name)] = 1.0
    return labels


def _code(value: str, uncertain: str, blank: str, where: str) -> float:
    v = value.strip()
    if v == "":
        return float("nan") if blank == "nan" else 0.0
    try:
        x = float(v)
    except ValueError:
        raise ValueError(f"{where}: label value {value!r} is not 1, 0, -1 or blank.") from None
    if x == 1.0:
        return 1.0
    if x == 0.0:
        return 0.0
    if x == -1.0:
        return {"nan": float("nan"), "zero": 0.0, "one": 1.0}[uncertain]
    raise ValueError(f"{where}: label value {value!r} is not 1, 0, -1 or blank.")


def _is_code_column(rows: Sequence[Sequence[str]], i: int) -> bool:
    seen = False
    for r in rows:
        v = _cell(r, i)
        if v == "":
            continue
        try:
            if float(v) not in (0.0, 1.0, -1.0):
                return False
        except ValueError:
            return False
        seen = True
    return seen


def patient_split(records: Sequence[Record], val_fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Carve a validation set of whole patients (records without a patient are their own group)."""
    if val_fraction <= 0 or not records:
        return list(records), []
    groups = sorted({r.patient if r.patient is not None else f"\0{r.image_id}" for r in records})
    n_val = int(round(val_fraction * len(groups)))
    n_val = min(max(n_val, 1), len(groups) - 1) if len(groups) > 1 else 0
    if n_val == 0:
        logger.warning("only one patient: no validation split carved")
        return list(records), []
    order = np.random.default_rng(seed).permutation(len(groups))
    val_groups = {groups[j] for j in order[:n_val]}
    train, val = [], []
    for r in records:
        (val if (r.patient if r.patient is not None else f"\0{r.image_id}") in val_groups else train).append(r)
    return train, val


def _check_fraction(val_fraction: Any) -> float:
    try:
        f = float(val_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}.") from None
    if not 0.0 <= f < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1) (share of patients held out), got {val_fraction!r}.")
    return f


def _check_class_names(class_names: Any, where: Path) -> tuple[str, ...]:
    names = (class_names,) if isinstance(class_names, str) else tuple(class_names)
    if not names or not all(isinstance(c, str) and c.strip() for c in names):
        raise ValueError(f"{where}: class_names must be a non-empty list of class names, got {class_names!r}.")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ValueError(f"{where}: class_names lists {dup} more than once; give each class once.")
    return names


def _make(records: Sequence[Record], class_names: Sequence[str], **kw: Any) -> Optional[CXRDataset]:
    return CXRDataset(records, class_names, **kw) if records else None


def _read_boxes(path: Path, class_names: Sequence[str], known_ids: Iterable[str]) -> dict[str, dict[str, list[Box]]]:
    """Boxes CSV (``BBox_List_2017.csv`` columns or ``image,class,x,y,w,h``) -> image -> class -> boxes."""
    header, rows = read_table(path)
    norm = [h.lower().replace("bbox", "").replace("[", "").replace("]", "").strip() for h in header]
    ii = _col(header, ["Image Index", "image", "image_id", "path"], path, "image")
    ci = _col(header, ["Finding Label", "class", "label"], path, "class")
    try:
        xi, yi, wi, hi = (norm.index(c) for c in ("x", "y", "w", "h"))
    except ValueError:
        raise ValueError(f"{path} has no x, y, w, h columns (header: {', '.join(map(repr, header))}); expected "
                         "the BBox_List_2017.csv columns 'Bbox [x', 'y', 'w', 'h]' or plain x, y, w, h.") from None
    known = set(known_ids)
    out: dict[str, dict[str, list[Box]]] = {}
    unmatched = 0
    for n, row in enumerate(rows, start=2):
        image_id, cls = _cell(row, ii), _cell(row, ci)
        cls = BBOX_ALIASES.get(cls, cls)
        if cls not in class_names:
            raise ValueError(f"{path} line {n}: unknown box label {_cell(row, ci)!r}; known labels: "
                             f"{', '.join(class_names)} (aliases: {BBOX_ALIASES}).")
        try:
            box = tuple(float(_cell(row, j)) for j in (xi, yi, wi, hi))
        except ValueError:
            raise ValueError(f"{path} line {n}: box values {[_cell(row, j) for j in (xi, yi, wi, hi)]} are not "
                             "numbers.") from None
        if image_id not in known:
            unmatched += 1
            continue
        out.setdefault(image_id, {}).setdefault(cls, []).append(box)  # type: ignore[arg-type]
    if unmatched:
        logger.warning("%s: %d box(es) refer to images not in the label table; ignored", path, unmatched)
    return out


# ------------------------------------------------------------------------------------------------
# ChestX-ray14
# ------------------------------------------------------------------------------------------------
def _index_images(root: Path, images_subdir: str) -> dict[str, Path]:
    """File name -> path for ``root/<images_subdir>/`` and the distributed ``root/images_0XX/images/`` folders."""
    folders = [root / images_subdir]
    for d in sorted(root.glob("images_*")):
        if d.is_dir():
            folders += [d / "images", d]
    index: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        with os.scandir(folder) as it:
            for e in it:
                if e.is_file() and e.name.lower().endswith(_IMAGE_SUFFIXES):
                    index.setdefault(e.name, Path(e.path))
    return index


def _read_list(path: Path, root: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found. The ChestX-ray14 folder {root} must contain Data_Entry_2017.csv, "
                                "train_val_list.txt, test_list.txt (BBox_List_2017.csv optional) and the images "
                                "in images/ or images_001/images/ ... images_012/images/.")
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def chestxray14(root: PathLike, *, size: int = 224, val_fraction: float = 0.1, seed: int = 0,
                cache_dir: Optional[PathLike] = None, on_error: str = "fail",
                images_subdir: str = "images") -> Splits:
    """NIH ChestX-ray14 (Wang et al., CVPR 2017) as distributed.

    Parameters
    ----------
    root : path
        Folder with ``Data_Entry_2017.csv`` (or ``Data_Entry_2017_v2020.csv``),
        ``train_val_list.txt``, ``test_list.txt``, optionally ``BBox_List_2017.csv``,
        and the PNGs in ``root/<images_subdir>/`` and/or ``root/images_0XX/images/``.
    size : int
        Network input side.
    val_fraction : float
        Share of the train_val *patients* held out for validation (no patient is in
        both); the draw depends only on ``seed`` and the set of patient IDs.
    seed : int
        Seed of the validation draw.
    cache_dir, on_error
        See :class:`CXRDataset`; missing images are reported (or skipped) per split.
    images_subdir : str
        Name of the flat images folder under ``root``.

    Returns
    -------
    Splits
        ``train`` and ``val`` from ``train_val_list.txt``, ``test`` from
        ``test_list.txt``; ``class_names`` is :data:`CHESTXRAY14_CLASSES`. Labels are
        0/1 ("No Finding" = all zeros). Boxes (8 classes, "Infiltrate" mapped to
        "Infiltration") are in the 1024 x 1024 frame (``meta["box_frame"]``); use
        :meth:`CXRDataset.boxes_at` to scale them.

    Raises
    ------
    FileNotFoundError
        ``root``, the data entry CSV or a list file is missing (the message lists what
        the folder must contain); images missing with ``on_error="fail"``.
    ValueError
        Unknown labels (the message lists the known ones), an image in both lists,
        malformed CSV, bad arguments.
    """
    size = check_size(size)
    val_fraction = _check_fraction(val_fraction)
    check_choice(on_error, "on_error", ON_ERROR)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ChestX-ray14 folder {root} not found; pass the folder that holds "
                                "Data_Entry_2017.csv and the images.")
    entry = root / "Data_Entry_2017.csv"
    if not entry.is_file() and (root / "Data_Entry_2017_v2020.csv").is_file():
        entry = root / "Data_Entry_2017_v2020.csv"
    if not entry.is_file():
        raise FileNotFoundError(f"{entry} not found. The ChestX-ray14 folder {root} must contain Data_Entry_2017.csv, "
                                "train_val_list.txt, test_list.txt (BBox_List_2017.csv optional) and the images "
                                "in images/ or images_001/images/ ... images_012/images/.")
    train_val_ids = _read_list(root / "train_val_list.txt", root)
    test_ids = _read_list(root / "test_list.txt", root)
    both = sorted(set(train_val_ids) & set(test_ids))
    if both:
        raise ValueError(f"{len(both)} image(s) are in both train_val_list.txt and test_list.txt: {show_paths(both)}.")

    header, rows = read_table(entry)
    ii = _col(header, ["Image Index"], entry, "'Image Index'")
    fi = _col(header, ["Finding Labels"], entry, "'Finding Labels'")
    pi = _col(header, ["Patient ID"], entry, "'Patient ID'")
    extra = {name: j for j, name in enumerate(header)
             if name and j not in (ii, fi, pi) and name in ("Follow-up #", "Patient Age", "Patient Gender",
                                                            "View Position")}
    found = _index_images(root, images_subdir)
    records: dict[str, Record] = {}
    for n, row in enumerate(rows, start=2):
        image_id = _cell(row, ii)
        if not image_id:
            raise ValueError(f"{entry} line {n}: empty 'Image Index'.")
        labels = _parse_findings(_cell(row, fi), CHESTXRAY14_CLASSES, f"{entry} line {n} ({image_id})")
        patient = _cell(row, pi) or None
        if patient is not None and patient.isdigit():
            patient = str(int(patient))
        meta: dict[str, Any] = {k: _cell(row, j) for k, j in extra.items()}
        meta["box_frame"] = CHESTXRAY14_BOX_FRAME
        path = found.get(image_id, root / images_subdir / image_id)
        records[image_id] = Record(image_id, path, labels, patient, {}, meta)

    bbox = root / "BBox_List_2017.csv"
    if bbox.is_file():
        for image_id, boxes in _read_boxes(bbox, BOXED_CLASSES, records).items():
            records[image_id].boxes = boxes
    else:
        logger.info("%s not found: no boxes", bbox)

    def pick(ids: Sequence[str], name: str) -> list[Record]:
        absent = [i for i in ids if i not in records]
        if absent:
            logger.warning("%d image(s) of %s are not in %s; ignored (e.g. %s)", len(absent), name, entry.name,
                           show_paths(absent, 3))
        return [records[i] for i in ids if i in records]

    tv = pick(train_val_ids, "train_val_list.txt")
    test = pick(test_ids, "test_list.txt")
    unlisted = len(records) - len(tv) - len(test)
    if unlisted:
        logger.info("%d image(s) of %s are in neither list; not used", unlisted, entry.name)
    train, val = patient_split(tv, val_fraction, seed)
    kw = dict(size=size, cache_dir=cache_dir, on_error=on_error)
    return Splits(_make(train, CHESTXRAY14_CLASSES, **kw), _make(val, CHESTXRAY14_CLASSES, **kw),
                  _make(test, CHESTXRAY14_CLASSES, **kw), CHESTXRAY14_CLASSES)


# ------------------------------------------------------------------------------------------------
# generic folder + CSV
# ------------------------------------------------------------------------------------------------
def _resolve(root: Path, value: str) -> Path:
    p = Path(value)
    if p.is_absolute():
        return p
    direct = root / p
    if not direct.exists() and (root / "images" / p).exists():
        return root / "images" / p
    return direct


#: Column names :func:`csv_dataset` reads as report text by default (lower case).
_TEXT_COLUMNS = ("findings", "impression", "text", "report_text")


def _attach_mimic_reports(reports: Path, records: Sequence[Record]) -> None:
    """Give each record (``meta["study_id"]``) its study's report; count the images whose study has none."""
    from .reports_join import mimic_report_texts, report_text

    if not reports.exists():
        raise FileNotFoundError(f"MIMIC-CXR reports {reports} not found; give mimic-cxr-reports.zip or its files/ "
                                f"folder (reports=...), or leave it out for images without reports")
    by_study = {study: text for _, study, text in mimic_report_texts(reports)}
    without = 0
    for r in records:
        text = by_study.get(str(r.meta.get("study_id")))
        if text is None:
            without += 1
            continue
        r.report = report_text(f"s{r.meta['study_id']}", text)
    if without:
        logger.warning("%d of %d image(s) have no report in %s (their study's s<study>.txt is missing); they keep "
                       "report=None (text guidance trains them without the text term)", without, len(records), reports)


def csv_dataset(csv_path: PathLike, *, image_col: Optional[str] = None, label_cols: Optional[Sequence[str]] = None,
                split_col: Optional[str] = None, patient_col: Optional[str] = None, root: Optional[PathLike] = None,
                size: int = 224, uncertain: str = "nan", blank: str = "nan",
                class_names: Optional[Sequence[str]] = None, boxes_csv: Optional[PathLike] = None,
                val_fraction: float = 0.0, seed: int = 0, cache_dir: Optional[PathLike] = None,
                on_error: str = "fail", text_cols: Optional[Sequence[str]] = None) -> Splits:
    """A folder of images with one CSV row per image.

    Parameters
    ----------
    csv_path : path
        The table. Its image column holds paths relative to ``root``; a name not found
        there is looked for in ``root/images/`` (the phantom's layout).
    image_col : str, optional
        Default: the first of ``Image``, ``Image Index``, ``path``, ``Path``, ``image``.
    label_cols : sequence of str, optional
        Label columns coded 1/0/-1/blank. Default: every other column whose non-blank
        values are all 1/0/-1 (the split, patient and ``report`` columns excluded, and a ``No Finding``
        and a ``Normal`` column too when there are others: they are their absence, not classes; name
        them in ``class_names`` to train on them). If there is none
        and the table has ``Finding Labels`` ("A|B" or "No Finding", as in
        ``Data_Entry_2017.csv``), labels are derived from it over ``class_names``
        (default: :data:`CHESTXRAY14_CLASSES` when every label is one of them, else the
        sorted labels found). The phantom's ``labels.csv`` has both; its 0/1 columns win.
    split_col : str, optional
        Column with ``train``/``val``/``test`` (``valid``/``validation`` accepted). Default: a
        column named ``split`` when every value in it is one of these (and ``val_fraction``
        is 0), as ``chexradi label-reports`` writes it. Without one every row is in ``train``,
        and ``val_fraction`` of the patients are held out.
    patient_col : str, optional
        Patient column, for the patient-level validation draw.
    root : path, optional
        Base of relative image paths; default the CSV's folder.
    uncertain : {"nan", "zero", "one"}
        -1 (uncertain) becomes NaN (U-Ignore), 0 (U-Zeros) or 1 (U-Ones).
    blank : {"nan", "zero"}
        A blank cell becomes NaN (unknown) or 0.
    class_names : sequence of str, optional
        Order (and set) of classes: label columns to use when labels come from 0/1/-1
        columns (a name that is not a label column raises ``ValueError``), or findings
        when derived from ``Finding Labels`` (a name that no row mentions and that is not
        a ChestX-ray14 class raises ``ValueError``: most likely a misspelling).
    boxes_csv : path, optional
        Boxes with the ``BBox_List_2017.csv`` columns or ``image,class,x,y,w,h`` (the
        phantom's ``boxes.csv``), in the pixel coordinates of each image file.
    val_fraction, seed, size, cache_dir, on_error
        As for :func:`chestxray14` and :class:`CXRDataset`.
    text_cols : sequence of str, optional
        Report text column(s), read as the report's sections of those (lower-case) names
        (``"findings,impression"``): each record's ``report``, which text guidance reads; a row
        whose cells are all empty has no report. Default: the columns named ``findings``,
        ``impression``, ``text`` or ``report_text`` (any case) that the table has.

    Raises
    ------
    FileNotFoundError
        The CSV, the boxes CSV or (``on_error="fail"``) images are missing.
    ValueError
        Missing/unknown columns, label values other than 1/0/-1/blank, unknown labels,
        split values other than train/val/test, no label column found.
    """
    size = check_size(size)
    val_fraction = _check_fraction(val_fraction)
    uncertain = check_choice(uncertain, "uncertain", UNCERTAIN_POLICIES)
    blank = check_choice(blank, "blank", ("nan", "zero"))
    check_choice(on_error, "on_error", ON_ERROR)
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"label CSV {csv_path} not found; pass the table with one row per image.")
    base = Path(root) if root is not None else csv_path.parent
    header, rows = read_table(csv_path)
    if image_col is not None:
        ii = _col(header, [image_col], csv_path, f"image ({image_col!r})")
    else:
        ii = _col(header, ["Image", "Image Index", "path", "Path", "image"], csv_path, "image")
    si = _col(header, [split_col], csv_path, f"split ({split_col!r})") if split_col else None
    if split_col is None and "split" in header and val_fraction == 0:
        j = header.index("split")  # a split column whose values are all train/val/test is used as one
        if all(_cell(r, j).lower() in _SPLIT_ALIASES for r in rows):
            si = j
    pi = _col(header, [patient_col], csv_path, f"patient ({patient_col!r})") if patient_col else None
    fi = _col(header, ["Finding Labels"], csv_path, "'Finding Labels'", required=False)
    if text_cols is not None:
        if isinstance(text_cols, str):
            text_cols = [c.strip() for c in text_cols.split(",") if c.strip()]
        tcols = [_col(header, [c], csv_path, f"report text ({c!r})") for c in text_cols]
    else:
        tcols = [j for j, h in enumerate(header) if h and h.strip().lower() in _TEXT_COLUMNS]
    if label_cols is not None:
        if isinstance(label_cols, str):
            label_cols = [label_cols]
        lidx = [_col(header, [c], csv_path, f"label ({c!r})") for c in label_cols]
        names = tuple(header[j] for j in lidx)  # type: ignore[index]
    else:
        lidx = [j for j in range(len(header)) if j not in (ii, si, pi, fi) and header[j]
                and header[j] != "report" and j not in tcols and _is_code_column(rows, j)]  # label-reports' ids
        if class_names is None and any(header[j] not in DERIVED_COLUMNS for j in lidx):
            # "No Finding" and "Normal" are the absence of the others (as chexradi label-reports writes them),
            # not classes
            lidx = [j for j in lidx if header[j] not in DERIVED_COLUMNS]
        if fi is not None:  # with 'Finding Labels', only columns named after a finding are labels
            found = {t.strip() for r in rows for t in _cell(r, fi).split("|")}
            findings = found | set(CHESTXRAY14_CLASSES) | set(class_names or ())
            lidx = [j for j in lidx if header[j] in findings]
        if class_names is not None and lidx:  # class_names picks and orders the label columns
            wanted = _check_class_names(class_names, csv_path)
            by_name = {header[j]: j for j in lidx}
            unknown = [c for c in wanted if c not in by_name]
            if unknown:
                raise ValueError(f"{csv_path}: class_names {unknown} are not label columns of the table (its label "
                                 f"columns: {', '.join(by_name)}); fix the names, or pass class_names=None to use "
                                 "every label column.")
            lidx = [by_name[c] for c in wanted]
        names = tuple(header[j] for j in lidx)
    from_findings = not lidx
    if from_findings:
        if fi is None:
            raise ValueError(f"{csv_path}: no label columns (1/0/-1/blank) and no 'Finding Labels' column; "
                             "pass label_cols=[...].")
        seen = sorted({t.strip() for r in rows for t in _cell(r, fi).split("|") if t.strip()} - {NO_FINDING})
        if class_names is None:
            names = CHESTXRAY14_CLASSES if set(seen) <= set(CHESTXRAY14_CLASSES) else tuple(seen)
        else:
            names = _check_class_names(class_names, csv_path)
            unknown = [c for c in names if c not in seen and c not in CHESTXRAY14_CLASSES]
            if unknown:
                raise ValueError(f"{csv_path}: class_names {unknown} name no finding of the 'Finding Labels' column "
                                 f"(found: {', '.join(seen) or 'none'}) and no ChestX-ray14 class; check the "
                                 "spelling, or pass class_names=None to use the findings found.")
    from .reports_join import sections_report

    records: list[Record] = []
    splits: dict[str, list[Record]] = {"train": [], "val": [], "test": []}
    for n, row in enumerate(rows, start=2):
        image_id = _cell(row, ii)
        where = f"{csv_path} line {n}"
        if not image_id:
            raise ValueError(f"{where}: empty image cell.")
        if from_findings:
            labels = _parse_findings(_cell(row, fi), names, f"{where} ({image_id})")
        else:
            labels = np.array([_code(_cell(row, j), uncertain, blank, f"{where} column {header[j]!r}")  # type: ignore
                               for j in lidx], np.float32)
        meta = {h: _cell(row, j) for j, h in enumerate(header) if h and j not in (ii, *lidx, *tcols)}
        patient = (_cell(row, pi) or None) if pi is not None else None
        rec = Record(image_id, _resolve(base, image_id), labels, patient, {}, meta,
                     report=sections_report(image_id, {header[j].strip(): _cell(row, j) for j in tcols}))
        records.append(rec)
        if si is None:
            splits["train"].append(rec)
        else:
            s = _SPLIT_ALIASES.get(_cell(row, si).lower())
            if s is None:
                raise ValueError(f"{where}: split value {_cell(row, si)!r} is not train, val or test.")
            splits[s].append(rec)
    if boxes_csv is not None:
        bpath = Path(boxes_csv)
        if not bpath.is_file():
            raise FileNotFoundError(f"boxes CSV {bpath} not found.")
        by_id = {r.image_id: r for r in records}
        for image_id, boxes in _read_boxes(bpath, names, by_id).items():
            by_id[image_id].boxes = boxes
    if val_fraction > 0:
        if si is not None:
            raise ValueError("val_fraction needs split_col=None (the split column already defines val).")
        splits["train"], splits["val"] = patient_split(splits["train"], val_fraction, seed)
    kw = dict(size=size, cache_dir=cache_dir, on_error=on_error)
    return Splits(_make(splits["train"], names, **kw), _make(splits["val"], names, **kw),
                  _make(splits["test"], names, **kw), tuple(names))


# ------------------------------------------------------------------------------------------------
# CheXpert
# ------------------------------------------------------------------------------------------------
def _chexpert_path(root: Path, value: str) -> Path:
    p = Path(value)
    for cand in (root.parent / p, root / p, root.joinpath(*p.parts[1:]) if len(p.parts) > 1 else root / p):
        if cand.exists():
            return cand
    return root.parent / p


def chexpert(root: PathLike, *, size: int = 224, uncertain: str = "nan", blank: str = "zero",
             frontal_only: bool = False, val_fraction: float = 0.1, seed: int = 0,
             cache_dir: Optional[PathLike] = None, on_error: str = "fail") -> Splits:
    """CheXpert (Irvin et al., AAAI 2019): ``root/train.csv`` and ``root/valid.csv``.

    Parameters
    ----------
    root : path
        The ``CheXpert-v1.0`` (or ``-small``) folder. ``Path`` cells such as
        ``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`` are taken
        relative to ``root``'s parent (or to ``root`` itself when that is where they are).
    uncertain : {"nan", "zero", "one"}
        -1 (uncertain): ``"nan"`` U-Ignore (default, masked from the loss), ``"zero"``
        U-Zeros, ``"one"`` U-Ones.
    blank : {"zero", "nan"}
        Blank (not mentioned in the report): 0 by default, as is usual for CheXpert, or
        NaN (unknown).
    frontal_only : bool
        Keep only ``Frontal/Lateral == "Frontal"`` rows.
    val_fraction, seed
        Patient-level validation split carved from ``train.csv`` (patients parsed from
        the ``patientNNNNN`` path component).

    Returns
    -------
    Splits
        ``train``/``val`` from ``train.csv``; ``test`` is the official ``valid.csv``
        (the CheXpert test set is not public). ``class_names`` is :data:`CHEXPERT_CLASSES`.

    Raises
    ------
    FileNotFoundError
        ``root`` or ``train.csv`` is missing; images missing with ``on_error="fail"``.
    ValueError
        Columns missing, bad label codes, bad arguments.
    """
    size = check_size(size)
    val_fraction = _check_fraction(val_fraction)
    uncertain = check_choice(uncertain, "uncertain", UNCERTAIN_POLICIES)
    blank = check_choice(blank, "blank", ("nan", "zero"))
    check_choice(on_error, "on_error", ON_ERROR)
    root = Path(root)
    train_csv = root / "train.csv"
    if not train_csv.is_file():
        raise FileNotFoundError(f"{train_csv} not found. The CheXpert folder {root} must contain train.csv, "
                                "valid.csv and the train/ and valid/ image folders.")

    def load(path: Path) -> list[Record]:
        header, rows = read_table(path)
        pth = _col(header, ["Path"], path, "'Path'")
        lidx = [_col(header, [c], path, repr(c)) for c in CHEXPERT_CLASSES]
        view = _col(header, ["Frontal/Lateral"], path, "'Frontal/Lateral'", required=bool(frontal_only))
        out = []
        for n, row in enumerate(rows, start=2):
            value = _cell(row, pth)
            if frontal_only and _cell(row, view).lower() != "frontal":
                continue
            labels = np.array([_code(_cell(row, j), uncertain, blank, f"{path} line {n} column {header[j]!r}")
                               for j in lidx], np.float32)  # type: ignore[index]
            patient = next((part for part in Path(value).parts if part.startswith("patient")), None)
            meta = {h: _cell(row, j) for j, h in enumerate(header) if h and j != pth and j not in lidx}
            out.append(Record(value, _chexpert_path(root, value), labels, patient, {}, meta))
        return out

    train, val = patient_split(load(train_csv), val_fraction, seed)
    valid_csv = root / "valid.csv"
    test = load(valid_csv) if valid_csv.is_file() else []
    if not valid_csv.is_file():
        logger.warning("%s not found: no test split", valid_csv)
    kw = dict(size=size, cache_dir=cache_dir, on_error=on_error)
    return Splits(_make(train, CHEXPERT_CLASSES, **kw), _make(val, CHEXPERT_CLASSES, **kw),
                  _make(test, CHEXPERT_CLASSES, **kw), CHEXPERT_CLASSES)


# ------------------------------------------------------------------------------------------------
# MIMIC-CXR-JPG
# ------------------------------------------------------------------------------------------------
_MIMIC_PREFIX = "mimic-cxr-2.0.0-"
_MIMIC_SPLITS = {"train": "train", "validate": "val", "test": "test"}
MIMIC_LABELERS = ("chexpert", "negbio")


def _mimic_csv(root: Path, name: str) -> Path:
    """``root/mimic-cxr-2.0.0-<name>.csv.gz``, or the plain ``.csv`` when only that exists."""
    gz = root / f"{_MIMIC_PREFIX}{name}.csv.gz"
    plain = root / f"{_MIMIC_PREFIX}{name}.csv"
    return plain if not gz.is_file() and plain.is_file() else gz


def _mimic_missing(path: Path, root: Path, labeler: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{path} not found. The MIMIC-CXR-JPG folder {root} must contain {_MIMIC_PREFIX}split.csv.gz, "
        f"{_MIMIC_PREFIX}{labeler}.csv.gz, {_MIMIC_PREFIX}metadata.csv.gz (for the views filter; plain .csv "
        "files are accepted too) and the images in files/pXX/pSUBJECT/sSTUDY/.")


def _mimic_id(value: str) -> str:
    return str(int(value)) if value.isdigit() else value


def mimic_cxr(root: PathLike, *, size: int = 224, labeler: str = "chexpert", uncertain: str = "nan",
              blank: str = "zero", views: Optional[Sequence[str]] = ("PA", "AP"),
              classes: Optional[Sequence[str]] = None, cache_dir: Optional[PathLike] = None,
              on_error: str = "fail", cache_dtype: str = "float32", reports: Optional[PathLike] = None) -> Splits:
    """MIMIC-CXR-JPG v2.0.0/2.1.0 (Johnson et al., PhysioNet 2019) as distributed.

    Parameters
    ----------
    root : path
        The ``mimic-cxr-jpg/2.0.0`` (or ``2.1.0``) folder, with ``mimic-cxr-2.0.0-split.csv.gz``
        (``dicom_id, study_id, subject_id, split``), the labels of ``labeler``, optionally
        ``mimic-cxr-2.0.0-metadata.csv.gz`` (``ViewPosition`` per ``dicom_id``) and the
        images in ``files/p<first two digits of subject_id>/p<subject_id>/s<study_id>/<dicom_id>.jpg``.
        Each table is read as ``.csv.gz`` or, when only that exists, as plain ``.csv``.
    size : int
        Network input side.
    labeler : {"chexpert", "negbio"}
        Label table: ``mimic-cxr-2.0.0-chexpert.csv.gz`` (CheXpert labeler) or
        ``mimic-cxr-2.0.0-negbio.csv.gz`` (NegBio). Labels are per study and apply to
        every image of the study.
    uncertain : {"nan", "zero", "one"}
        -1 (uncertain): ``"nan"`` U-Ignore (default, masked from the loss), ``"zero"``
        U-Zeros, ``"one"`` U-Ones, as for :func:`chexpert`.
    blank : {"zero", "nan"}
        Blank (not mentioned in the report): 0 by default, as for :func:`chexpert`, or
        NaN (unknown).
    views : sequence of str or None
        ``ViewPosition`` values to keep (case-insensitive; default frontal ``PA`` and
        ``AP``), read from the metadata table. Images without a metadata row or with a
        blank ``ViewPosition`` are dropped (logged). None keeps every image and does not
        need the metadata table.
    classes : sequence of str, optional
        Observations to use, in the given order (default: the 14 of
        :data:`MIMIC_CXR_CLASSES`, in the label table's order).
    cache_dir, on_error, cache_dtype
        See :class:`CXRDataset`; missing images are reported (or skipped) per split.
    reports : path, optional
        MIMIC-CXR's free-text reports (``mimic-cxr-reports.zip`` or its ``files`` tree of
        ``s<study>.txt``); default ``root/mimic-cxr-reports.zip`` or ``root/reports`` when one is
        there. Each image's record gets its study's report (``report``); images whose study has
        no report are counted (a warning) and keep ``report=None``.

    Returns
    -------
    Splits
        The official split: ``train``, ``validate`` -> ``val``, ``test``; patients are
        ``subject_id`` (the split keeps each patient in one split). ``class_names`` is
        ``classes``. Images whose study has no row in the label table are skipped and
        counted in a warning (after the views filter). Each record has
        ``image_id = dicom_id`` and ``meta`` ``{"dicom_id", "study_id", "view"}`` (``view``
        the ``ViewPosition``, None without a metadata table).

    Raises
    ------
    FileNotFoundError
        ``root``, the split or label table is missing; the metadata table is missing while
        ``views`` is set; images missing with ``on_error="fail"``.
    ValueError
        Columns missing, bad label codes, split values other than train/validate/test,
        unknown classes, bad arguments.
    """
    size = check_size(size)
    labeler = check_choice(labeler, "labeler", MIMIC_LABELERS)
    uncertain = check_choice(uncertain, "uncertain", UNCERTAIN_POLICIES)
    blank = check_choice(blank, "blank", ("nan", "zero"))
    check_choice(on_error, "on_error", ON_ERROR)
    check_choice(cache_dtype, "cache_dtype", CACHE_DTYPES)
    if isinstance(views, str):
        views = [views]
    keep = None if views is None else {v.strip().upper() for v in views}
    if keep is not None and not keep:
        raise ValueError("views is empty; give the ViewPosition values to keep (e.g. ('PA', 'AP')) or None for all.")
    names = MIMIC_CXR_CLASSES if classes is None else tuple([classes] if isinstance(classes, str) else classes)
    unknown = [c for c in names if c not in MIMIC_CXR_CLASSES]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"classes must be distinct MIMIC-CXR observations, got {list(names)!r}; known: "
                         f"{', '.join(MIMIC_CXR_CLASSES)}.")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MIMIC-CXR-JPG folder {root} not found; pass the folder that holds "
                                f"{_MIMIC_PREFIX}split.csv.gz and files/.")
    split_csv = _mimic_csv(root, "split")
    label_csv = _mimic_csv(root, labeler)
    meta_csv = _mimic_csv(root, "metadata")
    for path in (split_csv, label_csv):
        if not path.is_file():
            raise _mimic_missing(path, root, labeler)
    if keep is not None and not meta_csv.is_file():
        raise FileNotFoundError(f"{meta_csv} not found; it gives each image's ViewPosition, which views="
                                f"{tuple(views)!r} needs. Add it to {root} or pass views=None to keep every view.")

    header, rows = read_table(label_csv)
    sti = _col(header, ["study_id"], label_csv, "'study_id'")
    lidx = [_col(header, [c], label_csv, repr(c)) for c in names]
    labels_of: dict[str, np.ndarray] = {}
    for n, row in enumerate(rows, start=2):
        labels_of[_mimic_id(_cell(row, sti))] = np.array(
            [_code(_cell(row, j), uncertain, blank, f"{label_csv} line {n} column {header[j]!r}")  # type: ignore
             for j in lidx], np.float32)

    view_of: Optional[dict[str, str]] = None
    if meta_csv.is_file():
        header, rows = read_table(meta_csv)
        di = _col(header, ["dicom_id"], meta_csv, "'dicom_id'")
        vi = _col(header, ["ViewPosition"], meta_csv, "'ViewPosition'")
        view_of = {_cell(row, di): _cell(row, vi) for row in rows}
        del header, rows
    else:
        logger.info("%s not found: views unknown (meta['view'] is None)", meta_csv)

    header, rows = read_table(split_csv)
    di = _col(header, ["dicom_id"], split_csv, "'dicom_id'")
    sti = _col(header, ["study_id"], split_csv, "'study_id'")
    sui = _col(header, ["subject_id"], split_csv, "'subject_id'")
    spi = _col(header, ["split"], split_csv, "'split'")
    splits: dict[str, list[Record]] = {"train": [], "val": [], "test": []}
    unlabelled: list[str] = []
    other_view: list[str] = []
    for n, row in enumerate(rows, start=2):
        dicom, study, subject = _cell(row, di), _mimic_id(_cell(row, sti)), _mimic_id(_cell(row, sui))
        where = f"{split_csv} line {n}"
        if not dicom or not study or not subject:
            raise ValueError(f"{where}: empty dicom_id, study_id or subject_id.")
        s = _MIMIC_SPLITS.get(_cell(row, spi).lower())
        if s is None:
            raise ValueError(f"{where}: split value {_cell(row, spi)!r} is not train, validate or test.")
        view = view_of.get(dicom, "") if view_of is not None else None
        if keep is not None and (view or "").upper() not in keep:
            other_view.append(dicom)
            continue
        labels = labels_of.get(study)
        if labels is None:
            unlabelled.append(dicom)
            continue
        path = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg"
        meta = {"dicom_id": dicom, "study_id": study, "view": view}
        splits[s].append(Record(dicom, path, labels.copy(), subject, {}, meta))
    if other_view:
        logger.info("%d image(s) of %s have a ViewPosition not in %s (or none); not used", len(other_view),
                    split_csv.name, sorted(keep or ()))
    if unlabelled:
        logger.warning("%d image(s) of %s belong to a study with no row in %s; skipped (e.g. %s)",
                       len(unlabelled), split_csv.name, label_csv.name, show_paths(unlabelled, 3))
    if reports is None:
        reports = next((c for c in (root / "mimic-cxr-reports.zip", root / "reports") if c.exists()), None)
    if reports is not None:
        _attach_mimic_reports(Path(reports), [r for recs in splits.values() for r in recs])
    kw = dict(size=size, cache_dir=cache_dir, on_error=on_error, cache_dtype=cache_dtype)
    return Splits(_make(splits["train"], names, **kw), _make(splits["val"], names, **kw),
                  _make(splits["test"], names, **kw), names)
