"""Loop stage 2b: where a guided round's radiomics masks come from -- the arm of the experiment.

A guided round ``k`` measures radiomics inside one mask per (image, class). Which mask is the
*arm* (``guidance={"masks": ...}``, ``chexradi iterate --guidance-masks``):

``cam`` (default)
    round ``k-1``'s heatmap masks, as the loop was designed (ChexRadiNet).
``truth``
    an oracle. On the training split, a present finding's mask is its ground-truth mask; an
    absent finding's is a region of normal lung of the same kind: the ground-truth mask of a
    present finding of that class in another training image, drawn at random, *at its own
    position*, cut to this image's lung fields clear of its findings -- so that neither the
    mask's place, its size nor its outline says whether the finding is there (a costophrenic
    region for Effusion, a rim for Pneumothorax, where real ones lie). Up to ten masks are
    drawn until one has at least 95 % of its pixels in that allowed region; when none has, the
    first is moved whole to a random place inside it (:func:`chexradi.cam.masks.place_mask`).
    A finding defined by an organ (Cardiomegaly: the heart) is measured on that organ in every
    image, present or not, where the dataset knows the organ. A present finding without a
    ground-truth annotation (most positives of ChestX-ray14, whose boxes cover a few hundred
    test images) keeps its own heatmap mask and is counted (``n_unannotated``). Validation and
    test use round ``k-1``'s heatmap masks, as a deployed model would.
``random``
    a negative control: every (image, class) heatmap mask of round ``k-1`` moved whole (same
    area, same outline) to a random position inside the lung fields, on every split.
``lungs``
    anatomy without localisation: the lung fields, for every class and split.

The control arm (no radiomics at all) is ``guidance={"enabled": False}`` (``--no-guidance``).

Every mask drawn here comes from a generator seeded by ``(run seed, round, split, image,
class)``, so a resumed round draws the same masks. Masks are written (atomically, once) to
``round_<k>/guidance_masks/<split>/<index>_<class>.nrrd``; the ``cam`` arm writes nothing and
reads round ``k-1``'s masks. :class:`GuidanceMasks` also measures each split's mean IoU of the
masks it hands out with the ground truth (present findings only): how close the guidance
is to the lesion, round by round.

Where the data come from is the dataset's business: ``masks_at(i)`` (ground-truth masks of the
present findings), ``lungs_at(i)`` and ``heart_at(i)`` when it has them (the phantom), else the
ground-truth boxes (``boxes_at``, e.g. ChestX-ray14's boxed images) filled as masks, and lung
fields generated from the image (:func:`chexradi.data.lungs.lung_field_mask`).
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from ..data.truth import has_truth, lung_fields, truth_masks
from ..names import MASK_ARMS

logger = logging.getLogger("chexradi.loop")

__all__ = ["MASK_ARMS", "GuidanceMasks", "arm_name", "normal_region"]


#: Findings measured on an organ, present or absent (the dataset's ``<organ>_at(i)``).
ORGAN_OF: dict[str, str] = {"Cardiomegaly": "heart"}

_SPLIT_ID = {"train": 0, "val": 1, "test": 2}

#: Masks of other images tried for an absent finding's oracle region before one is moved instead.
OUTLINE_TRIES = 10
#: Share of such a mask that must lie in this image's normal lung for it to be used where it is.
IN_PLACE_FRACTION = 0.95


def arm_name(guidance: Mapping[str, Any]) -> str:
    """The arm of a run from its resolved ``guidance`` settings: ``"control"`` or the masks' source."""
    return "control" if not guidance.get("enabled", True) else str(guidance.get("masks", "cam"))


def arm_label(guidance: Mapping[str, Any]) -> str:
    """The name of a run's arm in comparisons: ``guidance["label"]`` when given; else ``"control"``, the masks'
    source for radiomics alone (``"cam"``, ``"truth"``...), or the sources joined by ``+`` with radiomics
    written as its masks (``"cam+tandem"``, ``"vkd"``)."""
    if guidance.get("label"):
        return str(guidance["label"])
    masks = arm_name(guidance)
    sources = list(guidance.get("sources") or ["radiomics"])
    if masks == "control" or sources == ["radiomics"]:
        return masks
    return "+".join(masks if s == "radiomics" else str(s) for s in sources)


def normal_region(masks: Sequence[np.ndarray], allowed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A region of normal tissue shaped and placed like a real finding: one of ``masks`` (ground-truth masks
    of that finding in other images), drawn at random, where it lies, cut to ``allowed`` (this image's lung
    fields clear of its findings) when at least ``IN_PLACE_FRACTION`` of it is there; up to
    ``OUTLINE_TRIES`` draws, then the first drawn is moved whole to a random place inside ``allowed``."""
    from ..cam.masks import place_mask

    first = None
    for _ in range(OUTLINE_TRIES):
        m = masks[int(rng.integers(len(masks)))]
        first = m if first is None else first
        n = np.count_nonzero(m)
        if m.shape == allowed.shape and n and np.count_nonzero(m & allowed) >= IN_PLACE_FRACTION * n:
            return m & allowed
    return place_mask(first, allowed, rng)


def _rng(seed: int, k: int, split: str, index: int, cls: int) -> np.random.Generator:
    return np.random.default_rng([seed, k, _SPLIT_ID.get(split, zlib.crc32(split.encode())), index, cls])


@dataclass
class _IoU:
    """Mean IoU with the truth per split, over (image, present finding) pairs."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, split: str, v: float) -> None:
        if v == v:  # not NaN
            self.sums[split] = self.sums.get(split, 0.0) + v
            self.counts[split] = self.counts.get(split, 0) + 1

    def means(self) -> dict[str, float]:
        return {s: self.sums[s] / self.counts[s] for s in self.sums}


class GuidanceMasks:
    """The masks a guided round measures radiomics in, for one arm (see the module docstring).

    Parameters
    ----------
    arm:
        One of :data:`MASK_ARMS`.
    splits:
        split -> dataset (the loop's parts).
    class_names:
        The classes, in head order (a mask's file name carries the class index).
    round_dir, prev_round_dir:
        This round's folder (where drawn masks go) and round ``k-1``'s (its heatmap masks).
    seed, k:
        The run's seed and this round's number (they seed every draw).

    Raises
    ------
    ValueError
        An unknown arm; ``truth`` on data that has no ground-truth masks or boxes.
    """

    def __init__(self, arm: str, splits: Mapping[str, Any], class_names: Sequence[str], *, round_dir: Path,
                 prev_round_dir: Path, seed: int, k: int) -> None:
        if arm not in MASK_ARMS:
            raise ValueError(f"unknown guidance masks {arm!r}; use one of {', '.join(MASK_ARMS)}")
        if arm == "truth" and not has_truth(splits.get("train")):
            raise ValueError("guidance masks 'truth' need ground-truth masks or boxes on the training split (the "
                             "phantom; ChestX-ray14's boxed images); this data has neither: use 'cam', 'random' "
                             "or 'lungs'")
        self.arm, self.splits, self.class_names = arm, splits, list(class_names)
        self.round_dir, self.prev = Path(round_dir), Path(prev_round_dir)
        self.seed, self.k = int(seed), int(k)
        self.iou = _IoU()
        self.n_written = 0
        self.n_unannotated = 0
        self._known: dict[str, bool] = {}
        self._lungs: dict[tuple[str, int], np.ndarray] = {}
        self._truths: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self._shapes: Optional[dict[str, list[np.ndarray]]] = None
        if arm == "truth" and not self._outlines():
            raise ValueError("guidance masks 'truth': no image of the training split has a ground-truth mask or box; "
                             "use data whose training images are annotated, or another arm")

    # -- what the rows become ---------------------------------------------------------------------
    def rows(self, rows: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        """Round ``k-1``'s ``regions.csv`` rows (one at a time) -> the rows to extract, each with the
        absolute ``mask_file`` to measure in (``empty`` rows are skipped by the extraction)."""
        from .._nrrd import read_nrrd_array

        for r in rows:
            out = dict(r)
            split, i, cls = r["split"], int(r["index"]), r["class"]
            kcls = self.class_names.index(cls)
            ds = self.splits[split]
            cam_file = self.prev / r["mask"]
            truth: Optional[dict[str, np.ndarray]] = None
            if self.arm == "cam" or (self.arm == "truth" and split != "train"):
                out["mask_file"] = str(cam_file)
                known = self._known.setdefault(split, has_truth(ds))  # read the mask only to measure it
                mask = None if r.get("empty") or not known else self._read(cam_file, read_nrrd_array)
            else:
                mask, truth = self._draw(split, i, cls, kcls, ds, r, cam_file, read_nrrd_array)
                if mask is None or not mask.any():
                    out["empty"], out["mask_file"] = True, ""
                else:
                    out["empty"] = False
                    out["mask_file"] = str(self._write(split, i, kcls, mask))
            if self._known.setdefault(split, has_truth(ds)) and (mask is not None):
                truth = truth if truth is not None else self._truth(split, i, ds, mask.shape)
                if cls in truth:
                    from ..cam.masks import mask_iou

                    self.iou.add(split, mask_iou(mask, truth[cls]))
            yield out

    @staticmethod
    def _read(path: Path, reader: Callable[[Path], Any]) -> Optional[np.ndarray]:
        got = reader(path) if path.is_file() else None
        return None if got is None else np.asarray(got.array) > 0

    def _truth(self, split: str, i: int, ds: Any, shape: tuple[int, int]) -> dict[str, np.ndarray]:
        key = (split, i)
        if key not in self._truths:
            self._truths.clear()  # rows come image by image: keep one image's masks
            self._truths[key] = truth_masks(ds, i, shape)
        return self._truths[key]

    def _lung(self, split: str, i: int, ds: Any, shape: tuple[int, int]) -> np.ndarray:
        key = (split, i)
        if key not in self._lungs:
            self._lungs.clear()  # rows come image by image: keep one image's fields
            self._lungs[key] = lung_fields(ds, i, lambda: _network_image(ds, i))
        lungs = self._lungs[key]
        if lungs.shape != shape:
            raise ValueError(f"the lung fields of image {i} of {split} are {lungs.shape}, its masks {shape}")
        return lungs

    def _draw(self, split: str, i: int, cls: str, kcls: int, ds: Any, row: Mapping[str, Any], cam_file: Path,
              reader: Callable[[Path], Any]) -> tuple[Optional[np.ndarray], Optional[dict[str, np.ndarray]]]:
        from ..cam.masks import place_mask

        cam = self._read(cam_file, reader) if not row.get("empty") else None
        shape = cam.shape if cam is not None else (ds.size, ds.size)
        rng = _rng(self.seed, self.k, split, i, kcls)
        lungs = self._lung(split, i, ds, shape)
        if self.arm == "lungs":
            return lungs.copy(), None
        if self.arm == "random":
            return (None if cam is None else place_mask(cam, lungs, rng)), None
        # truth, training split
        truth = self._truth(split, i, ds, shape)
        if cls in truth:
            return truth[cls], truth
        organ = ORGAN_OF.get(cls)
        if organ is not None and callable(getattr(ds, f"{organ}_at", None)):
            return np.asarray(getattr(ds, f"{organ}_at")(i), bool), truth
        targets = getattr(ds, "targets", None)
        if targets is not None and float(np.asarray(targets)[i, kcls]) == 1.0:
            self.n_unannotated += 1  # present, but nobody drew where: its own heatmap mask
            return cam, truth
        outlines = self._outlines().get(cls) or []
        if not outlines:  # no annotated finding of this class in training: the CAM mask's outline, moved
            if cam is None:
                return None, truth
            outlines = [cam]
        allowed = lungs.copy()
        for m in truth.values():
            allowed &= ~m
        return normal_region(outlines, allowed, rng), truth

    def _outlines(self) -> dict[str, list[np.ndarray]]:
        """Class -> the ground-truth masks of its present findings on the training split (drawn from)."""
        if self._shapes is None:
            ds = self.splits["train"]
            shape = (ds.size, ds.size) if hasattr(ds, "size") else None
            self._shapes = {}
            for i in range(len(ds)):
                for c, m in truth_masks(ds, i, shape or (0, 0)).items():
                    if m.any():
                        self._shapes.setdefault(c, []).append(m)
        return self._shapes

    def _write(self, split: str, i: int, kcls: int, mask: np.ndarray) -> Path:
        from ..data.lungs import save_mask
        from .regions import mask_file

        path = self.round_dir / "guidance_masks" / mask_file(split, i, kcls)[len("masks/"):]
        if not path.is_file():  # drawn from a seeded generator: a resumed round draws the same mask
            save_mask(mask.astype(np.uint8), (1.0, 1.0), path, sync=False)
            self.n_written += 1
        return path

    def folders(self) -> list[Path]:
        """The folders masks were written to (to be made durable at once)."""
        base = self.round_dir / "guidance_masks"
        return [p for p in (base / s for s in self.splits) if p.is_dir()]


def _network_image(ds: Any, i: int) -> np.ndarray:
    """Image ``i`` as the network sees it, brought back to [0, 1] (the grid every mask lives on)."""
    from ..data.transforms import from_model_input

    return from_model_input(np.asarray(ds[i]["image"]))
