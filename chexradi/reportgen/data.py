"""Studies for report generation: a study's views, its report as token ids, its labels.

A report describes a *study* (IU X-ray: a frontal and a lateral radiograph), while the image
datasets of :mod:`chexradi.data` hold one item per image with its study's report
(``report_at``). :class:`StudyDataset` groups them back:

- images whose reports share an id (:class:`~chexradi.data.reports_join.ReportText` ``id``) are
  one study, views in the dataset's order (IU's XML order, MIMIC's files); a record that lists
  its study's other image files (R2Gen's layout: ``meta["image_paths"]``) brings them as views;
  a report without an id (the phantom's) is a study of its one image;
- at most ``views`` views per study are kept (the rest counted: ``extra_views``);
- the report text is the ``sections`` joined (default Findings, R2Gen's convention; a report
  without them: its whole text) and encoded by the run's
  :class:`~chexradi.reports.tokenizer.Tokenizer`;
- an image without a report, or whose report has no words, is **left out and counted**
  (``missing``, ``empty``), never an error, so one study with a lost report does not stop
  training; the counts go into the run's record.

Items: ``{"images": (V, C, H, W) float32 (zero views past the study's own), "views": (V,) bool,
"tokens": (L,) long <bos> ... <eos>, "target": (K,) float32, "index": study}``; :func:`collate_studies`
pads the token sequences of a batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..guidance.text import report_texts
from ..names import REPORTGEN_DEFAULTS
from ..reports.tokenizer import clean_report

__all__ = ["Study", "StudyDataset", "collate_studies", "images_as_studies", "SECTIONS", "STUDY_KEYS"]

#: The report sections a generator learns to write by default — Findings (R2Gen's convention for IU X-ray).
SECTIONS = REPORTGEN_DEFAULTS["sections"]
#: What a training batch carries.
STUDY_KEYS = ("images", "views", "tokens")


@dataclass
class Study:
    """One study: its id, its views (dataset indices or image paths), its reference text and labels."""

    id: str
    views: list[Any]
    text: str
    target: np.ndarray
    image_ids: list[str] = field(default_factory=list)


def _report_id(rep: Any) -> Optional[str]:
    rid = getattr(rep, "id", None)
    return str(rid) if rid not in (None, "") else None


class StudyDataset(Dataset):
    """``dataset``'s images grouped into studies with their reports (see the module docstring).

    Parameters
    ----------
    dataset:
        An image dataset with ``report_at(i)`` (:class:`~chexradi.data.cxr_dataset.CXRDataset`, the
        phantom's), items ``{"image", "target"}``.
    tokenizer:
        The run's :class:`~chexradi.reports.tokenizer.Tokenizer`; None gives items without tokens
        (generation only).
    views:
        Most views per study.
    sections:
        The report sections read (comma-separated), see :func:`chexradi.guidance.text.report_texts`.
    split:
        The split's name, for messages.
    on_empty:
        ``"skip"`` (training: left out, counted) or ``"fail"`` (evaluation: a reference without words
        cannot be scored, so the images are named in a ValueError).

    Raises
    ------
    ValueError
        A dataset without ``report_at``; no study with a report; ``on_empty="fail"`` and reports without words.
    """

    def __init__(self, dataset: Any, tokenizer: Any = None, *, views: int = 2, sections: str = SECTIONS,
                 split: str = "train", on_empty: str = "skip") -> None:
        if not callable(getattr(dataset, "report_at", None)):
            raise ValueError(f"the {split} split ({type(dataset).__name__}) has no reports (report_at); report "
                             f"generation needs data with reports: phantom, iu_xray:DIR, mimic:DIR or a csv:FILE "
                             f"with a findings / impression / text column")
        if on_empty not in ("skip", "fail"):
            raise ValueError(f"on_empty must be 'skip' or 'fail', got {on_empty!r}")
        if isinstance(views, bool) or not isinstance(views, int) or views < 1:
            raise ValueError(f"views must be an integer >= 1, got {views!r}")
        self.dataset = dataset
        self.views = views
        self.split = split
        self.size = int(getattr(dataset, "size", 0) or dataset[0]["image"].shape[-1])
        texts = report_texts(dataset, sections)
        records = getattr(dataset, "records", None)
        self.counts = {"images": len(dataset), "studies": 0, "missing": 0, "empty": 0, "extra_views": 0,
                       "truncated": 0, "unknown_words": 0}
        order: list[str] = []
        by_id: dict[str, Study] = {}
        empty: dict[str, str] = {}  # report id -> the first of its images, for the message
        targets = np.asarray(dataset.targets, np.float32)
        for i, text in enumerate(texts):
            if text is None:
                self.counts["missing"] += 1
                continue
            rep = dataset.report_at(i)
            rid = _report_id(rep) or f"{split}-{i}"
            rec = records[i] if records is not None else None
            image_id = str(getattr(rec, "image_id", i))
            if not clean_report(text).split():  # no word once cleaned ("...", "-"): nothing to learn or score
                self.counts["empty"] += 1
                empty.setdefault(rid, image_id)
                continue
            if rid not in by_id:
                paths = list((getattr(rec, "meta", None) or {}).get("image_paths") or []) if rec is not None else []
                own = getattr(rec, "path", None)
                views_of: list[Any] = [i]
                views_of += [Path(p) for p in paths if own is None or Path(p) != Path(own)]
                by_id[rid] = Study(id=rid, views=views_of, text=text, target=targets[i], image_ids=[image_id])
                order.append(rid)
            else:
                by_id[rid].views.append(i)
                by_id[rid].image_ids.append(image_id)
        if empty and on_empty == "fail":
            named = [f"{rid} (image {image})" for rid, image in list(empty.items())[:5]]
            raise ValueError(f"{len(empty)} reference report(s) of the {split} split have no words: "
                             f"{', '.join(named)}{' ...' if len(empty) > 5 else ''}; they cannot be scored: "
                             f"give their text or remove those images from the data")
        self.studies: list[Study] = []
        for rid in order:
            st = by_id[rid]
            self.counts["extra_views"] += max(0, len(st.views) - views)
            st.views = st.views[:views]
            self.studies.append(st)
        self.counts["studies"] = len(self.studies)
        if not self.studies:
            raise ValueError(f"the {split} split has no image with a report ({self.counts['missing']} without a "
                             f"report, {self.counts['empty']} with an empty one); report generation needs reports")
        self.ids: list[Optional[np.ndarray]] = [None] * len(self.studies)
        if tokenizer is not None:
            self.tokenize(tokenizer)

    def tokenize(self, tokenizer: Any) -> None:
        """Encode every study's report with ``tokenizer`` (items then carry ``tokens``; the counts of truncated
        reports and unknown words are set): for a vocabulary fitted on these very studies' :attr:`texts`."""
        self.counts["truncated"] = self.counts["unknown_words"] = 0
        ids = []
        for st in self.studies:
            enc = tokenizer.encode_report(st.text)
            self.counts["truncated"] += int(enc.truncated)
            self.counts["unknown_words"] += enc.n_unknown
            ids.append(np.asarray(enc.ids, np.int64))
        self.ids = ids

    def __len__(self) -> int:
        return len(self.studies)

    @property
    def texts(self) -> list[str]:
        """Each study's reference report (the sections read, as written)."""
        return [s.text for s in self.studies]

    @property
    def study_ids(self) -> list[str]:
        return [s.id for s in self.studies]

    @property
    def targets(self) -> np.ndarray:
        return np.stack([s.target for s in self.studies]).astype(np.float32)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(getattr(self.dataset, "class_names", ()))

    def _view(self, v: Any) -> Tensor:
        if isinstance(v, (int, np.integer)):
            return self.dataset[int(v)]["image"]
        load = getattr(self.dataset, "load_file", None)  # the dataset's decoded-image cache, when it has one
        if load is not None:
            arr = load(v)
        else:
            from ..data.readers import read_radiograph
            from ..data.transforms import to_model_input

            arr = to_model_input(read_radiograph(v)[0], size=self.size)
        return torch.from_numpy(np.ascontiguousarray(arr))

    def __getitem__(self, index: int) -> dict[str, Any]:
        st = self.studies[int(index)]
        first = self._view(st.views[0])
        images = torch.zeros((self.views, *first.shape), dtype=torch.float32)
        images[0] = first
        for j, v in enumerate(st.views[1:], start=1):
            images[j] = self._view(v)
        mask = torch.zeros(self.views, dtype=torch.bool)
        mask[: len(st.views)] = True
        item = {"images": images, "views": mask, "target": torch.from_numpy(st.target.copy()), "index": int(index)}
        if self.ids[int(index)] is not None:
            item["tokens"] = torch.from_numpy(self.ids[int(index)].copy())
        return item


def collate_studies(pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """A ``collate_fn``: stack the images, views and targets; pad the token sequences with ``pad_id``."""
    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "images": torch.stack([it["images"] for it in items]),
            "views": torch.stack([it["views"] for it in items]),
            "index": torch.tensor([int(it["index"]) for it in items], dtype=torch.long),
        }
        if all("target" in it for it in items):
            out["target"] = torch.stack([it["target"] for it in items])
        if all("tokens" in it for it in items):
            length = max(int(it["tokens"].numel()) for it in items)
            tokens = torch.full((len(items), length), int(pad_id), dtype=torch.long)
            for b, it in enumerate(items):
                tokens[b, : it["tokens"].numel()] = it["tokens"]
            out["tokens"] = tokens
        return out

    return collate


def images_as_studies(groups: Sequence[Sequence[Any]], *, size: int, views: int) -> list[dict[str, Any]]:
    """Image files grouped into studies (each group one study's views) as generation items (no tokens)."""
    from ..data.readers import read_radiograph
    from ..data.transforms import to_model_input

    items = []
    for k, group in enumerate(groups):
        if len(group) > views:
            raise ValueError(f"study {k + 1} has {len(group)} images but the model takes at most {views} views; "
                             f"give at most {views} images per study")
        arrays = []
        for p in group:
            try:
                image, _ = read_radiograph(p)
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read image {p}: {exc}") from exc
            arrays.append(torch.from_numpy(np.ascontiguousarray(to_model_input(image, size=size))))
        images = torch.zeros((views, *arrays[0].shape), dtype=torch.float32)
        for j, a in enumerate(arrays):
            images[j] = a
        mask = torch.zeros(views, dtype=torch.bool)
        mask[: len(arrays)] = True
        items.append({"images": images, "views": mask, "index": k})
    return items
