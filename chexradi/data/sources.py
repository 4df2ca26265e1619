"""Where the loop's images come from: a data *spec* string -> :class:`~chexradi.data.datasets.Splits`.

``open_data(spec)`` understands

========================  =====================================================================
``phantom``               the synthetic phantom, generated in memory (:func:`phantom_splits`);
                          options as ``phantom:n=600,size=128,difficulty=0.5,seed=0,version=2``
``chestxray14:DIR``       NIH ChestX-ray14 (:func:`~chexradi.data.datasets.chestxray14`)
``chexpert:DIR``          CheXpert (:func:`~chexradi.data.datasets.chexpert`)
``mimic:DIR``             MIMIC-CXR-JPG (:func:`~chexradi.data.datasets.mimic_cxr`), with each study's
                          report when ``DIR/mimic-cxr-reports.zip`` or ``DIR/reports`` is there
``iu_xray:DIR``           IU X-ray (OpenI) images with their reports (:func:`iu_xray_splits`): R2Gen's
                          layout and split (``annotation.json``), else the OpenI XML + PNGs
``csv:FILE``              a folder of images + one CSV row per image, its text columns as the
                          report (:func:`~chexradi.data.datasets.csv_dataset`)
========================  =====================================================================

A :class:`PhantomDataset` behaves like a :class:`~chexradi.data.datasets.CXRDataset`
(items ``{"image", "target", "index"}``, ``targets``, ``class_names``, ``boxes_at``) but
holds its images in memory, already through
:func:`~chexradi.data.transforms.to_model_input`, so it is the same network input a
written phantom PNG read from disk would give. It also knows each image's ground-truth
masks (``masks_at``: one per present finding) and lung fields (``lungs_at``), which the
loop's oracle and control arms use (``guidance={"masks": "truth" | "random" | "lungs"}``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .cxr_dataset import Splits, check_size
from .phantom import DEFAULT_CLASSES, PHANTOM_VERSION, PHANTOM_VERSIONS, generate
from .transforms import to_model_input

__all__ = ["PhantomDataset", "phantom_splits", "open_data", "check_images", "iu_xray_splits", "SOURCES", "PHANTOM_DEFAULTS",
           "phantom_defaults"]

PathLike = Union[str, "os.PathLike[str]"]

#: Spec prefixes :func:`open_data` accepts.
SOURCES = ("phantom", "chestxray14", "chexpert", "mimic", "iu_xray", "csv")

#: Defaults of ``phantom:...`` (and of :func:`phantom_splits`) for each phantom version: case counts of the
#: three splits, image side, seed and difficulty of the generator. Version 2's 128 px make every finding
#: visible and, at output stride 16, give an 8 x 8 final map; its 360 test images narrow the AUC's
#: confidence intervals (training cost is unchanged). Version 1's are those it was always run with.
_DEFAULTS_BY_VERSION: dict[str, dict[str, Any]] = {
    "1": {"n_train": 360, "n_val": 120, "n_test": 120, "size": 96, "seed": 0, "difficulty": 0.5},
    "2": {"n_train": 360, "n_val": 120, "n_test": 360, "size": 128, "seed": 0, "difficulty": 0.5},
}
#: The defaults of ``phantom:...`` for the default phantom version (:func:`phantom_defaults` gives each version's).
PHANTOM_DEFAULTS: dict[str, Any] = _DEFAULTS_BY_VERSION[PHANTOM_VERSION]


def phantom_defaults(version: Union[int, str] = PHANTOM_VERSION) -> dict[str, Any]:
    """The defaults of ``phantom:version=V`` (a copy)."""
    v = str(version)
    if v not in _DEFAULTS_BY_VERSION:
        raise ValueError(f"phantom version must be one of {', '.join(PHANTOM_VERSIONS)}, got {version!r}")
    return dict(_DEFAULTS_BY_VERSION[v])


class PhantomDataset(Dataset):
    """Phantom cases in memory as network inputs; see the module docstring.

    Parameters
    ----------
    images : numpy.ndarray
        ``(N, S, S)`` phantom images in [0, 1].
    labels : numpy.ndarray
        ``(N, K)`` 0/1.
    boxes : list of dict
        Per case, class -> ``(x, y, w, h)`` of the lesion (pixels of the ``S x S`` image).
    class_names : sequence of str
        The ``K`` classes.
    ids : sequence of str
        Image ids (the file names ``write_phantom`` gives).
    size : int
        Network input side; images of another side are resized and boxes scaled.
    masks : list of dict, optional
        Per case, class -> bool ``(S, S)`` ground-truth mask of each present finding.
    lungs : list of numpy.ndarray, optional
        Per case, the bool ``(S, S)`` lung fields.
    hearts : list of numpy.ndarray, optional
        Per case, the bool ``(S, S)`` cardiac silhouette (the region Cardiomegaly is judged on).
    reports : list, optional
        Per case, its report (:class:`~chexradi.data.phantom_reports.PhantomReport`: ``findings``,
        ``impression``, ``text``), written from its ground truth; :meth:`report_at` gives it.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, boxes: Sequence[dict], class_names: Sequence[str],
                 ids: Sequence[str], *, size: int, masks: Optional[Sequence[dict]] = None,
                 lungs: Optional[Sequence[np.ndarray]] = None, hearts: Optional[Sequence[np.ndarray]] = None,
                 reports: Optional[Sequence[Any]] = None) -> None:
        n = int(images.shape[0])
        if labels.shape[0] != n or len(boxes) != n or len(ids) != n:
            raise ValueError(f"images ({n}), labels ({labels.shape[0]}), boxes ({len(boxes)}) and ids ({len(ids)}) "
                             "must have one entry per case")
        if any(x is not None and len(x) != n for x in (masks, lungs, hearts, reports)):
            raise ValueError(f"masks, lungs, hearts and reports must have one entry per case ({n})")
        self.size = int(size)
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.ids = list(ids)
        self._source_side = int(images.shape[-1])
        self._x = np.stack([to_model_input(im, size=self.size) for im in images]) if n else \
            np.zeros((0, 1, self.size, self.size), np.float32)
        self._y = np.asarray(labels, np.float32)
        self._boxes = [dict(b) for b in boxes]
        self._masks = None if masks is None else [{c: np.asarray(m, bool) for c, m in d.items()} for d in masks]
        self._lungs = None if lungs is None else [np.asarray(m, bool) for m in lungs]
        self._hearts = None if hearts is None else [np.asarray(m, bool) for m in hearts]
        self._reports = None if reports is None else list(reports)

    def __len__(self) -> int:
        return int(self._x.shape[0])

    @property
    def targets(self) -> np.ndarray:
        """float32 ``(N, K)`` labels."""
        return self._y

    def load_image(self, index: int) -> np.ndarray:
        """float32 ``(1, size, size)`` network input of case ``index``."""
        return self._x[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not isinstance(index, (int, np.integer)) or not -n <= index < n:
            raise IndexError(f"index {index!r} out of range for a dataset of {n} image(s).")
        i = int(index) % n
        return {"image": torch.from_numpy(self._x[i].copy()), "target": torch.from_numpy(self._y[i].copy()),
                "index": i}

    def boxes_at(self, index: int, size: Optional[int] = None) -> dict[str, list[tuple[float, float, float, float]]]:
        """Class -> list of ``(x, y, w, h)`` at a ``size x size`` input (default ``self.size``)."""
        s = (self.size if size is None else int(size)) / self._source_side
        return {c: [(x * s, y * s, w * s, h * s)] for c, (x, y, w, h) in self._boxes[index].items()}

    def _at_size(self, mask: np.ndarray) -> np.ndarray:
        if mask.shape[-1] == self.size:
            return mask.copy()
        from .transforms import resize

        return resize(mask.astype(np.float32), (self.size, self.size)) >= 0.5

    @property
    def has_masks(self) -> bool:
        """Whether the ground-truth masks and lung fields are known (:meth:`masks_at`, :meth:`lungs_at`)."""
        return self._masks is not None and self._lungs is not None

    def masks_at(self, index: int) -> dict[str, np.ndarray]:
        """Class -> bool ``(size, size)`` ground-truth mask of each finding present in case ``index``."""
        if self._masks is None:
            raise ValueError("this PhantomDataset was built without masks; build it with phantom_splits()")
        return {c: self._at_size(m) for c, m in self._masks[index].items()}

    def lungs_at(self, index: int) -> np.ndarray:
        """The bool ``(size, size)`` lung fields of case ``index``."""
        if self._lungs is None:
            raise ValueError("this PhantomDataset was built without lung masks; build it with phantom_splits()")
        return self._at_size(self._lungs[index])

    def heart_at(self, index: int) -> np.ndarray:
        """The bool ``(size, size)`` cardiac silhouette of case ``index`` (enlarged or not)."""
        if self._hearts is None:
            raise ValueError("this PhantomDataset was built without heart masks; build it with phantom_splits()")
        return self._at_size(self._hearts[index])

    def report_at(self, index: int) -> Optional[Any]:
        """The report of case ``index`` (``findings``, ``impression``, ``text``), or None when the dataset has
        none (built without reports)."""
        return None if self._reports is None else self._reports[index]

    def __repr__(self) -> str:
        return f"PhantomDataset({len(self)} image(s), {len(self.class_names)} class(es), size={self.size})"


def phantom_splits(n_train: int = PHANTOM_DEFAULTS["n_train"], n_val: int = PHANTOM_DEFAULTS["n_val"],
                   n_test: int = PHANTOM_DEFAULTS["n_test"], *, size: int = PHANTOM_DEFAULTS["size"],
                   seed: int = PHANTOM_DEFAULTS["seed"], difficulty: float = PHANTOM_DEFAULTS["difficulty"],
                   classes: Sequence[str] = DEFAULT_CLASSES, render_size: Optional[int] = None,
                   version: Union[int, str] = PHANTOM_VERSION,
                   strength: Optional[dict[str, float]] = None) -> Splits:
    """Train / val / test splits of the phantom: cases ``0 .. n_train + n_val + n_test - 1`` in that order.

    ``render_size`` is the side the phantom is drawn at (default ``max(size, 64)``, the
    generator's minimum); images are then brought to ``size`` by
    :func:`~chexradi.data.transforms.to_model_input`, as files read from disk would be.
    ``version`` and ``strength`` are the phantom's (:func:`chexradi.data.phantom.make_case`);
    the counts and size default to version 2's (:func:`phantom_defaults` gives each version's).
    Each split knows its ground-truth masks, lung fields and hearts (``masks_at``, ``lungs_at``, ``heart_at``)
    and each image's report, written from its ground truth (``report_at``;
    :func:`chexradi.data.phantom_reports.write_report` with the phantom's ``seed``: the text ``write_phantom``
    puts in ``reports.csv``).

    Raises
    ------
    ValueError
        A count < 1, or invalid phantom settings (see :func:`chexradi.data.phantom.generate`).
    """
    for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    size = check_size(size)
    side = int(render_size) if render_size is not None else max(int(size), 64)
    total = int(n_train) + int(n_val) + int(n_test)
    ps = generate(total, size=side, seed=seed, difficulty=difficulty, classes=classes, version=version,
                  strength=strength)
    from .phantom_reports import write_report

    reports = [write_report(c, seed=int(seed)) for c in ps.cases]
    names = ps.image_names
    cuts = [0, int(n_train), int(n_train) + int(n_val), total]
    parts = [PhantomDataset(ps.images[a:b], ps.labels[a:b], ps.boxes[a:b], ps.class_names, names[a:b], size=size,
                            masks=[c.masks for c in ps.cases[a:b]], lungs=[c.lung_mask for c in ps.cases[a:b]],
                            hearts=[c.heart_mask for c in ps.cases[a:b]], reports=reports[a:b])
             for a, b in zip(cuts[:-1], cuts[1:])]
    return Splits(train=parts[0], val=parts[1], test=parts[2], class_names=tuple(ps.class_names))  # type: ignore


def _parse_options(text: str, spec: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ValueError(f"data spec {spec!r}: option {part!r} is not key=value "
                             f"(e.g. phantom:n=600,size=128,difficulty=0.5)")
        k, v = (s.strip() for s in part.split("=", 1))
        out[k] = v
    return out


def _phantom_from_options(opts: dict[str, Any], spec: str, size: Optional[int]) -> Splits:
    known = {"n", "n_train", "n_val", "n_test", "size", "seed", "difficulty", "classes", "version", "strength"}
    bad = sorted(set(opts) - known)
    if bad:
        raise ValueError(f"data spec {spec!r}: unknown phantom option(s) {', '.join(bad)}; "
                         f"valid: {', '.join(sorted(known))}")
    version = str(opts.get("version", PHANTOM_VERSION)).strip()
    if version not in PHANTOM_VERSIONS:
        raise ValueError(f"data spec {spec!r}: version must be one of {', '.join(PHANTOM_VERSIONS)}, got "
                         f"{opts['version']!r}")
    kw: dict[str, Any] = {**phantom_defaults(version), "version": version}
    try:
        if "n" in opts:  # total, split 60 / 20 / 20
            n = int(opts["n"])
            if n < 5:
                raise ValueError("n must be >= 5")
            kw["n_val"] = kw["n_test"] = max(1, n // 5)
            kw["n_train"] = n - 2 * kw["n_val"]
        for k in ("n_train", "n_val", "n_test", "size", "seed"):
            if k in opts:
                kw[k] = int(opts[k])
        if "difficulty" in opts:
            kw["difficulty"] = float(opts["difficulty"])
    except ValueError as exc:
        raise ValueError(f"data spec {spec!r}: {exc} (counts, size and seed are integers, difficulty a number "
                         f"in [0, 1])") from exc
    if size is not None and "size" not in opts:
        kw["size"] = int(size)
    if "classes" in opts:
        kw["classes"] = tuple(c.strip() for c in str(opts["classes"]).split("+") if c.strip())
    if "strength" in opts:  # strength=Nodule:1.5+Mass:0.4
        kw["strength"] = {}
        for item in filter(None, (p.strip() for p in str(opts["strength"]).split("+"))):
            name, sep, value = item.partition(":")
            try:
                kw["strength"][name.strip()] = float(value)
            except ValueError:
                raise ValueError(f"data spec {spec!r}: strength item {item!r} is not CLASS:NUMBER (e.g. "
                                 f"strength=Nodule:1.5+Mass:0.4)") from None
    return phantom_splits(**kw)


def open_data(spec: Union[str, Splits], *, size: Optional[int] = None, cache_dir: Optional[PathLike] = None,
              seed: int = 0, on_error: str = "fail", validate: bool = True, **options: Any) -> Splits:
    """Open a data spec (see the module docstring) as train / val / test splits.

    Parameters
    ----------
    spec : str or Splits
        ``phantom[:k=v,...]``, ``chestxray14:DIR``, ``chexpert:DIR``, ``mimic:DIR``,
        ``iu_xray:DIR`` or ``csv:FILE``; a :class:`Splits` is returned as it is.
    size : int, optional
        Network input side (default 224 for files, the phantom's own default for it).
    cache_dir : path, optional
        Decoded-image cache for file-based sources.
    seed : int
        Seed of the patient-level validation draw (file sources).
    on_error : {"fail", "skip"}
        Missing or unreadable image files: fail early naming them, or skip them with a count.
    validate : bool
        For file sources, open every image's header first (:func:`check_images`) so that a
        corrupt file is found before training rather than in the middle of an epoch.
    **options
        Passed to the reader (e.g. ``uncertain="zero"`` for CheXpert).

    Raises
    ------
    ValueError
        An unknown prefix (the message lists :data:`SOURCES`), a spec without its path, bad options.
    FileNotFoundError
        The folder or file does not exist.
    """
    if isinstance(spec, Splits):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"data must be a spec string such as 'phantom' or 'chestxray14:/data/cxr14', or "
                         f"chexradi.data.datasets.Splits; got {spec!r}")
    kind, _, rest = spec.strip().partition(":")
    kind = kind.lower()
    if kind not in SOURCES:
        raise ValueError(f"data spec {spec!r}: unknown source {kind!r}; use one of {', '.join(SOURCES)} "
                         f"(e.g. phantom, chestxray14:DIR, chexpert:DIR, mimic:DIR, iu_xray:DIR, csv:FILE)")
    if kind == "phantom":
        if options:
            raise ValueError(f"data spec {spec!r}: give phantom options in the spec (phantom:n=600,size=128), "
                             f"not as keywords {sorted(options)}")
        return _phantom_from_options(_parse_options(rest, spec), spec, size)
    if not rest:
        raise ValueError(f"data spec {spec!r}: {kind} needs a path, e.g. {kind}:/data/{kind}")
    path = Path(rest).expanduser()
    if not path.exists():
        what = "file" if kind == "csv" else "folder"
        raise FileNotFoundError(f"data spec {spec!r}: the {what} {path} does not exist; check the path")
    from . import datasets

    kw: dict[str, Any] = {"size": 224 if size is None else int(size), "cache_dir": cache_dir,
                          "on_error": on_error, **options}
    if kind == "csv":
        splits = datasets.csv_dataset(path, seed=seed, **kw)
    elif kind == "iu_xray":
        splits = iu_xray_splits(path, seed=seed, **kw)
    elif kind == "chestxray14":
        splits = datasets.chestxray14(path, seed=seed, **kw)
    elif kind == "chexpert":
        splits = datasets.chexpert(path, seed=seed, **kw)
    else:
        splits = datasets.mimic_cxr(path, **kw)
    if validate:
        check_images(splits, on_error=on_error)
    return splits


def iu_xray_splits(folder: Path, *, seed: int = 0, size: int = 224, cache_dir: Optional[PathLike] = None,
                   on_error: str = "fail", labels: str = "labeler", val_fraction: float = 0.1,
                   test_fraction: float = 0.2) -> Splits:
    """IU X-ray images with their reports as train / val / test.

    ``folder`` is R2Gen's layout (``annotation.json`` or ``r2gen_annotation.json`` with its split,
    images under ``images/<id>/0.png``; labels from the IU XML ``NLMCXR_reports.tgz`` when it is in
    the folder, else from the annotation's Findings) or the OpenI release (``NLMCXR_reports.tgz`` or
    ``ecgen-radiology/*.xml`` and the PNGs anywhere under the folder), split by report (a report's
    images stay together) with ``val_fraction`` / ``test_fraction`` drawn with ``seed``. One record per
    image file (R2Gen: the frontal ``0.png``), its report kept (``report_at``); reports without an
    image file are counted and left out. Labels: ``"labeler"`` (chexradi's) or ``"mesh"`` (the human
    indexers').
    """
    from . import reports_join as rj
    from .cxr_dataset import CXRDataset

    ann = next((folder / n for n in ("annotation.json", "r2gen_annotation.json") if (folder / n).is_file()), None)
    xml = next((c for c in (folder / "NLMCXR_reports.tgz", folder / "ecgen-radiology") if c.exists()), None)
    if ann is not None:
        images = folder / "images" if (folder / "images").is_dir() else folder
        joined = rj.r2gen_iu_xray(ann, images=images, reports=xml, labels=labels, missing="skip")
        parts = joined.by_split()
    elif xml is not None:
        joined = rj.iu_xray(xml, images=folder, labels=labels, missing="skip")
        from .datasets import patient_split

        # a record's patient is its report: a report's images stay in one split
        rest, test = patient_split(joined.records, test_fraction, seed)
        train, val = patient_split(rest, val_fraction / (1.0 - test_fraction), seed)
        parts = {"train": train, "val": val, "test": test}
    else:
        raise FileNotFoundError(f"iu_xray:{folder}: found neither R2Gen's annotation.json nor the IU XML "
                                f"(NLMCXR_reports.tgz or ecgen-radiology/); put the reports in the folder")
    import logging

    logging.getLogger("chexradi.data").info("iu_xray:%s: %s", folder, joined.report.summary())
    kw = dict(size=size, cache_dir=cache_dir, on_error=on_error)
    made = {s: CXRDataset([r for r in parts.get(s, []) if r.path is not None], joined.class_names, **kw)
            for s in ("train", "val", "test")}
    empty = [s for s, ds in made.items() if len(ds) == 0]
    if empty:
        raise ValueError(f"iu_xray:{folder}: no image of the {', '.join(empty)} split(s) was found "
                         f"({joined.report.summary()}); check that the PNGs are in the folder")
    return Splits(train=made["train"], val=made["val"], test=made["test"], class_names=tuple(joined.class_names))


def check_images(splits: Splits, *, on_error: str = "fail") -> int:
    """Open every image's header once (no decoding) so that unreadable files show up before training.

    ``on_error="fail"`` raises ``ValueError`` listing the unreadable files (path and
    reason); ``"skip"`` drops their records from the split and logs the count. Returns
    the number dropped.
    """
    import logging

    dropped = 0
    for name, ds in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if ds is None or not callable(getattr(ds, "validate", None)):
            continue
        ok, bad = ds.validate()
        if ok:
            continue
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        shown = "; ".join(f"{p}: {reason}" for p, reason in bad[:5]) + more
        if on_error == "fail":
            raise ValueError(f"{len(bad)} image(s) of the {name} split cannot be read: {shown}. Fix or remove "
                             f"them, or skip them (on_error='skip', chexradi iterate --skip-bad-images)")
        gone = {str(p) for p, _ in bad}
        ds.records = [r for r in ds.records if str(r.path) not in gone]
        ds.skipped = getattr(ds, "skipped", 0) + len(bad)
        dropped += len(bad)
        logging.getLogger("chexradi.data").warning("skipping %d unreadable image(s) of the %s split: %s",
                                                   len(bad), name, shown)
    return dropped
