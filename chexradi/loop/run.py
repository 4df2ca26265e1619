"""The loop itself: :func:`iterate` runs the rounds, resumes, and gathers the :class:`History`.

Round ``k`` of a run in ``out``::

    round_<k>/<source>/    what a guidance source prepared for the round: radiomics/cases.csv, radiomics.csv
                           (+ journal, meta): features inside round k-1's masks (k >= 1); standardizer.json
    round_<k>/guidance_masks/  the masks an arm other than cam drew (truth, random, lungs)
    round_<k>/fit/         best.pt, last.pt, history.json: training (chexradi.train.fit, resumable)
    round_<k>/masks/       <split>/<index>_<class>.nrrd: this round's heatmap masks
    round_<k>/regions.csv  one row per (split, image, class): probability, box, threshold, mask
    round_<k>/auc.csv, localization_iou.csv, localization_iobb.csv, localization_boxes.csv, predictions.csv
    round_<k>/round.json   the round's record, written last: a round is finished when it exists

plus ``run.json`` (the settings, format ``chexradi-run/2``), the sources' run files
(``images/``: the radiomics images, written once) and
``history.json`` / ``history.csv`` (all finished rounds). Every file is written
atomically. Re-running with the same ``out`` skips the finished rounds and continues
the first unfinished one (training resumes from its ``last.pt``, extraction from its
journal); settings that would change the result must be the same.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from .._io import atomic_write, sync_folders
from . import settings as _settings
from .arms import arm_name
from .history import History, read_run_json

logger = logging.getLogger("chexradi.loop")

__all__ = ["iterate", "RUN_FORMAT", "comparable_settings"]

RUN_FORMAT = "chexradi-run/2"
PathLike = Union[str, Path]

#: run.json keys that may differ when resuming (they do not change the numbers).
_FREE_KEYS = {"created", "versions", "rounds", "progress", "distributed", "round0_from"}
_FREE_TRAIN = {"device", "amp", "num_workers"}
_FREE_OTHER = {("radiomics", "jobs"), ("radiomics", "scheduler"), ("heatmap", "batch_size")}
#: Settings added after runs were first written: a run.json without one was run with this value.
_LEGACY = {("train", "output_stride"): 32, ("guidance", "masks"): "cam", ("guidance", "sources"): ["radiomics"],
           ("guidance", "label"): None}


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def comparable_settings(run: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a ``run.json`` that change a run's numbers: what a resumed run, a run sharing its round 0
    and runs compared with one another must have in common (free keys dropped, settings added since filled in
    with the value older runs had)."""
    d = {k: v for k, v in run.items() if k not in _FREE_KEYS}
    d = json.loads(json.dumps(d))
    for (g, k), v in _LEGACY.items():
        if isinstance(d.get(g), dict):
            d[g].setdefault(k, v)
    for k in _FREE_TRAIN:
        d.get("train", {}).pop(k, None)
    for g, k in _FREE_OTHER:
        d.get(g, {}).pop(k, None)
    return d


def _check_resume(run_json: Path, new: Mapping[str, Any], resume: bool) -> None:
    if not run_json.is_file():
        return
    old = read_run_json(run_json)
    if old.get("format") != RUN_FORMAT and resume:
        raise ValueError(f"{run_json.parent} was made by an older chexradi (format {old.get('format')!r}, this one "
                         f"writes {RUN_FORMAT!r}): it cannot be continued, but chexradi.History.load and `chexradi "
                         f"evaluate` still read it; give a new out folder to run again")
    if not resume:
        raise ValueError(f"{run_json.parent} already holds a run; resume it (resume=True / drop --no-resume), "
                         f"or give a new out folder (or delete this one) to start over")
    a, b = comparable_settings(old), comparable_settings(new)
    old_arm = arm_name({**{"enabled": True, "masks": "cam"}, **(a.get("guidance") or {})})
    new_arm = arm_name(b.get("guidance") or {})
    if old_arm != new_arm:
        raise ValueError(f"cannot resume {run_json.parent}: it is the {old_arm!r} arm, not {new_arm!r} (guidance "
                         f"masks / --no-guidance differ); give each arm its own out folder")
    if a != b:
        diff = []
        for k in sorted(set(a) | set(b)):
            x, y = a.get(k), b.get(k)
            if isinstance(x, dict) and isinstance(y, dict):  # a settings group: name the keys
                diff += [f"{k}.{s}" for s in sorted(set(x) | set(y)) if x.get(s) != y.get(s)]
            elif x != y:
                diff.append(k)
        raise ValueError(f"cannot resume {run_json.parent}: it was started with other settings (differing: "
                         f"{', '.join(diff)}); use the same settings, or a new out folder")


def _say(progress: Optional[bool], msg: str) -> None:
    logger.info(msg)
    if progress is not False:
        print(msg, file=sys.stderr, flush=True)


def iterate(data: Any, *, model: str = "resnet50_ta", rounds: int = 3, radiomics: Optional[Mapping[str, Any]] = None,
            guidance: Optional[Mapping[str, Any]] = None, train: Optional[Mapping[str, Any]] = None,
            heatmap: Optional[Mapping[str, Any]] = None, out: PathLike, resume: bool = True, seed: int = 0,
            size: Optional[int] = None, on_error: str = "fail", progress: Optional[bool] = None,
            on_round_end: Optional[Callable[[dict[str, Any]], Any]] = None,
            round0_from: Optional[PathLike] = None,
            sources: Optional[Mapping[str, Mapping[str, Any]]] = None) -> History:
    """Run the ChexRadiNet loop: train, heatmaps, masks, radiomics, guided retraining, for ``rounds`` rounds.

    Round 0 trains on images alone. After every round the model's class heatmaps for
    every image of every split are thresholded into masks; the radiomics features
    inside them (chexradi engine, in worker processes) are standardised with
    training-split statistics and guide round ``k + 1`` (a radiomics MLP fused with the
    image embedding, and an alignment loss). Each round is evaluated on the test split
    (val when there is none) with the image-only head and, from round 1, the fused head;
    localisation accuracy uses the heatmap boxes against the ground-truth boxes.

    Parameters
    ----------
    data : str or Splits
        A data spec (``"phantom"``, ``"phantom:n=600,size=128"``, ``"chestxray14:DIR"``,
        ``"chexpert:DIR"``, ``"mimic:DIR"``, ``"csv:FILE"``; see
        :func:`chexradi.data.sources.open_data`) or train/val/test
        :class:`~chexradi.data.datasets.Splits` (val is required; test optional).
    model : str
        Architecture (``chexradi.nn.list_models("classifier")``), e.g. ``"resnet50_ta"``.
    rounds : int
        Number of rounds including round 0 (``rounds=3``: image-only, then two guided rounds).
    radiomics, guidance, train, heatmap : dict, optional
        Settings that override :data:`chexradi.loop.settings.DEFAULTS` (unknown keys are refused).
        ``guidance["sources"]`` lists the guidance sources of guided rounds (default
        ``["radiomics"]``; :func:`chexradi.guidance.list_sources`).
    sources : dict, optional
        Settings groups of other guidance sources, by name (``radiomics=`` is the radiomics
        source's).
    out : path
        Run folder (created). Required: the loop is resumable only from disk.
    resume : bool
        Continue a run found in ``out`` (default). False refuses to touch an existing run.
    seed : int
        Seeds model initialisation, training order and the validation draw.
    size : int, optional
        Network input side for file sources (default 224) and the phantom (default 128; 96 for version 1).
    on_error : {"fail", "skip"}
        File sources: an image that is missing or cannot be opened fails the run before any
        training, naming the files (default), or is skipped with a count.
    progress : bool, optional
        Per-round messages and progress bars on stderr; None: bars only on a terminal.
    on_round_end : callable, optional
        Called with each finished round's record.
    round0_from : path, optional
        Another run's folder whose finished round 0 this run starts from (copied, files
        hard-linked where the file system allows) instead of training it again: the arms of
        an experiment (control, ``cam``, ``truth``, ...) then share one round-0 model, as
        they should. Its settings must equal this run's in everything but ``guidance``
        (round 0 trains on images alone whatever the arm); it is recorded in ``run.json``.

    Returns
    -------
    History

    Raises
    ------
    ValueError
        Bad settings (before any work), data without train/val splits, an ``out`` holding
        a run with other settings (or of another arm), a ``round0_from`` run with other
        settings or without a finished round 0.
    """
    from ..nn import CLASSIFIER, list_models

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1 (round 0 is image-only), got {rounds!r}")
    if model not in list_models(CLASSIFIER):
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(list_models(CLASSIFIER))}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    guidance_group = _settings.resolve("guidance", guidance)
    given = dict(sources or {})
    if radiomics is not None:
        given["radiomics"] = radiomics
    extra = sorted(set(given) - set(guidance_group["sources"]))
    if extra:
        raise ValueError(f"settings given for guidance source(s) {extra} that guidance['sources'] does not list "
                         f"({guidance_group['sources']}); add them there or drop their settings")
    groups = {"train": _settings.resolve("train", train), "heatmap": _settings.resolve("heatmap", heatmap),
              **{name: _settings.resolve(name, given.get(name)) for name in guidance_group["sources"]},
              "guidance": guidance_group}
    _check_heatmap_source(groups)
    if out is None:
        raise ValueError("out is required: give the run folder (e.g. out='runs/phantom')")
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"out={run_dir} is a file; give a folder")
    spec = data if isinstance(data, str) else f"{type(data).__name__} object"
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    from ..train import distributed as _distributed

    dist = _distributed.init_from_env(groups["train"]["device"])
    try:
        return _iterate(data, spec, dist, model=model, rounds=rounds, groups=groups, run_dir=run_dir, resume=resume,
                        seed=seed, size=size, on_error=on_error, progress=progress, on_round_end=on_round_end,
                        round0_from=None if round0_from is None else Path(round0_from))
    finally:
        dist.close()


def _iterate(data: Any, spec: str, dist: Any, *, model: str, rounds: int, groups: dict[str, dict[str, Any]],
             run_dir: Path, resume: bool, seed: int, size: Optional[int], on_error: str, progress: Optional[bool],
             on_round_end: Optional[Callable[[dict[str, Any]], Any]], round0_from: Optional[Path] = None) -> History:
    from ..data.sources import open_data

    run_json = run_dir / "run.json"
    if not dist.is_main:
        progress = False  # one rank speaks
    splits = open_data(data, size=size, cache_dir=run_dir / "cache", seed=seed, on_error=on_error)
    if splits.train is None or splits.val is None:
        raise ValueError(f"data {spec!r} must have a train and a val split (got train={splits.train is not None}, "
                         f"val={splits.val is not None})")
    parts = {s: ds for s, ds in (("train", splits.train), ("val", splits.val), ("test", splits.test))
             if ds is not None and len(ds) > 0}
    eval_split = "test" if "test" in parts else "val"
    class_names = list(splits.class_names)
    _check_against_data(groups, model, class_names)
    from ..nn.checkpoint import versions

    run = {"format": RUN_FORMAT, "data": spec, "model": model, "rounds": rounds, "seed": seed, "size": size,
           "class_names": class_names, "counts": {s: len(ds) for s, ds in parts.items()}, "eval_split": eval_split,
           **_jsonable(groups), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "versions": versions(),
           "distributed": {"world_size": dist.world_size, "backend": dist.backend}}
    copy_round0 = round0_from is not None and not (run_dir / "round_0" / "round.json").is_file()
    if round0_from is not None:
        run["round0_from"] = str(round0_from)
        if copy_round0:  # a finished round 0 here needs its source no longer
            _check_round0_source(round0_from, run)
    _check_resume(run_json, run, resume)
    _check_weights_file(groups, run_dir, rounds)
    if dist.is_distributed:  # every rank checked the same things; now they agree before anything is written
        dist.barrier()
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if run_json.is_file():
            old = read_run_json(run_json)
            run["created"] = old.get("created", run["created"])
        with atomic_write(run_json) as fh:
            json.dump(run, fh, indent=2)
    dist.barrier()

    from ..guidance import RoundContext, get_source

    sources = [get_source(name) for name in groups["guidance"]["sources"]] if groups["guidance"]["enabled"] else []
    if copy_round0 and dist.is_main:
        assert round0_from is not None
        _copy_round0(round0_from, run_dir, arm_name(groups["guidance"]))
        _say(progress, f"round 0 copied from {round0_from}")
    dist.barrier()
    history = History.load(run_dir)
    history.rounds = history.rounds[:rounds]
    done = len(history.rounds)
    if done:
        _say(progress, f"resuming {run_dir}: {done} round(s) finished")
    if done < rounds and dist.is_main:
        for src in sources:  # what a source keeps in the run folder (the radiomics images)
            src.setup(RoundContext(k=done, parts=parts, class_names=class_names, run_dir=run_dir,
                                   round_dir=run_dir / f"round_{done}", seed=seed, settings=groups[src.name],
                                   dist=dist, progress=progress, say=lambda m: _say(progress, m)))
    dist.barrier()
    if dist.is_distributed:
        _say(progress, f"distributed run: {dist.world_size} processes ({dist.backend}); training is "
                       f"data-parallel, heatmaps, radiomics and evaluation are sharded, rank 0 writes the results")
    bar = None if progress is False else progress
    try:
        for k in range(done, rounds):
            record = _run_round(k, parts, class_names, run=run, groups=groups, run_dir=run_dir,
                                eval_split=eval_split, progress=bar, say=lambda m: _say(progress, m), dist=dist,
                                sources=sources, last=k + 1 == rounds)
            history.rounds.append(record)
            if dist.is_main:
                history.to_json(run_dir / "history.json")
                history.to_csv(run_dir / "history.csv")
            dist.barrier()
            if on_round_end is not None:
                on_round_end(dict(record))
    finally:
        for src in sources:
            src.close()
    if done >= rounds and dist.is_main:
        history.to_json(run_dir / "history.json")
        history.to_csv(run_dir / "history.csv")
    return history


def _check_heatmap_source(groups: Mapping[str, Any]) -> None:
    """A ``heatmap.method`` a source offers needs that source among the configured, enabled ones."""
    from ..names import CAM_METHODS, SOURCE_HEATMAP_METHODS

    method = groups["heatmap"]["method"]
    if method in CAM_METHODS:
        return
    src = SOURCE_HEATMAP_METHODS[method]
    g = groups["guidance"]
    if not g["enabled"] or src not in g["sources"]:
        raise ValueError(f"heatmap['method'] = {method!r} is the {src!r} guidance source's attention: list {src!r} in "
                         f"guidance['sources'] (--guidance {src}) with guidance enabled, or use one of "
                         f"{', '.join(CAM_METHODS)}")


def _check_round0_source(src: Path, run: Mapping[str, Any]) -> None:
    """``src`` is a run with a finished round 0 and the same settings as ``run`` but for guidance."""
    src_json = src / "run.json"
    if not src_json.is_file() or not (src / "round_0" / "round.json").is_file():
        raise ValueError(f"round0_from={src}: not a run folder with a finished round 0 (no {src_json} or "
                         f"{src / 'round_0' / 'round.json'}); run that arm first, or drop round0_from")
    from ..guidance import get_source

    for what, r in (("its", read_run_json(src_json)), ("this run's", run)):
        g = r.get("guidance") or {}
        static = [n for n in (g.get("sources") or []) if g.get("enabled", True) and get_source(n).static]
        if static:
            raise ValueError(f"round0_from={src}: {what} guidance source(s) {static} guide round 0 too, so its round "
                             f"0 is not the image-only round the arms share; train round 0 in each run")
    a = {k: v for k, v in comparable_settings(read_run_json(src_json)).items() if k != "guidance"}
    b = {k: v for k, v in comparable_settings(run).items() if k != "guidance"}
    if a != b:
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ValueError(f"round0_from={src}: its round 0 was trained with other settings (differing: "
                         f"{', '.join(diff)}); only the guidance settings may differ between arms that share round 0")


def _copy_round0(src: Path, run_dir: Path, arm: str) -> None:
    """Copy ``src/round_0`` into ``run_dir`` (hard links where possible), its record made this run's.

    The copy is made in a temporary folder, made durable (its files and folders), then renamed to
    ``round_0`` and the run folder synced: after a crash there is either no round 0 or a whole one."""
    import os
    import shutil

    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    tmp = run_dir / ".round_0.copying"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src / "round_0", tmp, copy_function=link_or_copy)
    record = json.loads((tmp / "round.json").read_text())
    dst = run_dir / "round_0"
    record["arm"] = arm
    record["copied_from"] = str(src)
    record["paths"] = {"checkpoint": str(dst / "fit" / "best.pt"), "masks": str(dst / "masks"),
                       "regions": str(dst / "regions.csv"), "features": None}
    (tmp / "round.json").unlink()  # a hard link to the source's: replaced, never written through
    with atomic_write(tmp / "round.json") as fh:
        json.dump(record, fh, indent=2, allow_nan=False)
    sync_folders([tmp, *(p for p in tmp.rglob("*") if p.is_dir())])
    if dst.exists():  # an unfinished round 0 of this run (no round.json): the copy replaces it
        shutil.rmtree(dst)
    os.replace(tmp, dst)
    sync_folders([run_dir])


def _check_against_data(groups: Mapping[str, Mapping[str, Any]], model: str, class_names: list[str]) -> None:
    """Settings that can only be checked once the classes are known: class weights, the heatmap layer."""
    from ..train.objectives import _class_weights_setting

    try:
        _class_weights_setting(groups["train"]["class_weights"], len(class_names))
    except ValueError as exc:
        raise ValueError(f"train settings: {exc}") from exc
    layer = groups["heatmap"]["target_layer"]
    if layer is not None:
        from ..nn import create_model

        layers = dict(create_model(model, num_classes=len(class_names), in_chans=1,
                                   output_stride=groups["train"]["output_stride"]).named_modules())
        if layer not in layers:
            raise ValueError(f"heatmap['target_layer'] = {layer!r} is not a layer of {model}; e.g. "
                             f"{', '.join(n for n in layers if n.count('.') <= 1 and n)[:300]}")


def _check_weights_file(groups: Mapping[str, Mapping[str, Any]], run_dir: Path, rounds: int) -> None:
    """A ``train['weights']`` file must exist while a round still needs it (round 0, or every round from scratch)."""
    weights = groups["train"]["weights"]
    if weights is not None and not Path(weights).is_file() and (
            not (run_dir / "round_0" / "round.json").is_file()
            or (not groups["train"]["warm_start"] and not (run_dir / f"round_{rounds - 1}" / "round.json").is_file())):
        raise ValueError(f"train['weights'] = {weights!r}: file not found; give a local torchvision state_dict "
                         f"or None")


def _run_round(k: int, parts: Mapping[str, Any], class_names: list[str], *, run: Mapping[str, Any],
               groups: Mapping[str, Mapping[str, Any]], run_dir: Path, eval_split: str, progress: Optional[bool],
               say: Callable[[str], None], dist: Any, sources: Sequence[Any] = (), last: bool = False
               ) -> dict[str, Any]:
    from ..guidance import RoundContext
    from ..metrics import localization_accuracy
    from .arms import GuidanceMasks
    from .regions import Regions, make_regions, merge_region_files, read_regions
    from .training import evaluate, train_round

    if dist.is_distributed:  # this rank's device (cuda:LOCAL_RANK on GPUs); the settings stay as given
        groups = {**groups, "train": {**groups["train"], "device": str(dist.device(groups["train"]["device"]))}}
    shards = {s: dist.shard(len(ds)) for s, ds in parts.items()}

    rdir = run_dir / f"round_{k}"
    prev = run_dir / f"round_{k - 1}" if k > 0 else None
    rdir.mkdir(parents=True, exist_ok=True)
    t_round = time.perf_counter()
    seconds: dict[str, Any] = {"train": 0.0, "heatmaps": 0.0, "evaluate": 0.0, "sources": {}}
    counts = {s: len(ds) for s, ds in parts.items()}
    guidance_iou: Optional[dict[str, float]] = None
    unannotated = 0
    arm = arm_name(groups["guidance"])
    active = [src for src in sources if src.static or k > 0]  # mask sources guide from round 1
    guided = bool(active)
    masks = None
    if any(src.needs_masks for src in active):
        assert prev is not None
        masks = GuidanceMasks(arm, parts, class_names, round_dir=rdir, prev_round_dir=prev, seed=int(run["seed"]),
                              k=k)

    def mask_rows() -> Any:  # the arm's mask for every row of round k-1's regions (this rank's shard)
        assert masks is not None and prev is not None
        rows: Any = read_regions(prev / "regions.csv")  # one row at a time
        if dist.is_distributed:
            rows = (r for r in rows if int(r["index"]) in shards[r["split"]])
        return masks.rows(rows)

    prepared: dict[str, Any] = {}
    for src in active:
        if src.needs_masks:
            where = f"round {k - 1}'s heatmap masks" if arm == "cam" else f"the {arm!r} arm's masks"
            say(f"round {k}: {src.name} inside {where}")
        ctx = RoundContext(k=k, parts=parts, class_names=class_names, run_dir=run_dir, round_dir=rdir,
                           seed=int(run["seed"]), settings=groups[src.name], dist=dist, shards=shards,
                           mask_rows=mask_rows if src.needs_masks else None, progress=progress, say=say,
                           train=groups["train"])
        prepared[src.name] = src.prepare(ctx)
        seconds["sources"][src.name] = prepared[src.name].seconds
    if masks is not None:
        sync_folders(masks.folders())
        iou = masks.iou
        unannotated = masks.n_unannotated
        if dist.is_distributed:
            parts_iou = dist.all_gather_object((iou.sums, iou.counts))
            iou = type(iou)()
            for sums, cnts in parts_iou:
                for s, x in sums.items():
                    iou.sums[s] = iou.sums.get(s, 0.0) + x
                    iou.counts[s] = iou.counts.get(s, 0) + cnts[s]
            unannotated = int(dist.all_reduce_sum(np.array([unannotated]))[0])
        guidance_iou = iou.means()
    say(f"round {k}: training" + (f" (guided by {', '.join(s.name for s in active)})" if guided else " (image only)"))
    t = time.perf_counter()
    rm = train_round(k, parts, model_name=run["model"], class_names=class_names,
                     sources=[(src, prepared[src.name]) for src in active], train=groups["train"],
                     guidance=groups["guidance"], round_dir=rdir,
                     prev_best=(prev / "fit" / "best.pt") if prev is not None else None, seed=int(run["seed"]),
                     progress=progress, meta={"data": run["data"], "size": run["size"]})
    seconds["train"] = time.perf_counter() - t
    t = time.perf_counter()
    ev = evaluate(rm, parts[eval_split], eval_split, class_names, train=groups["train"], progress=progress,
                  dist=dist)
    seconds["evaluate"] = time.perf_counter() - t
    say(f"round {k}: heatmaps and masks for {sum(counts.values())} image(s) x {len(class_names)} class(es)")
    t = time.perf_counter()
    if not last:
        for src in sources:  # resources the next round needs (radiomics workers) start while the masks are made
            src.start(groups[src.name])
    offered = rm.objective.heatmap_methods() if rm.objective is not None else {}
    reg = make_regions(rm.model, parts, class_names, settings=groups["heatmap"], round_dir=rdir, prev_round_dir=prev,
                       heatmap_fn=offered.get(groups["heatmap"]["method"]),
                       device=groups["train"]["device"], progress=progress,
                       indices=shards if dist.is_distributed else None,
                       rows_file=f"regions.rank{dist.rank}.csv" if dist.is_distributed else "regions.csv",
                       boxes_for=eval_split)
    if dist.is_distributed:  # every rank wrote its shard's masks and rows; rank 0 joins the row files
        gathered = dist.all_gather_object(reg)  # counts and the evaluation split's boxes (no rows)
        if dist.is_main:
            reg = Regions.merged(gathered)
            shard_files = [rdir / f"regions.rank{r}.csv" for r in range(dist.world_size)]
            merge_region_files(shard_files, rdir / "regions.csv", list(parts))
            for f in shard_files:
                f.unlink()
    seconds["heatmaps"] = time.perf_counter() - t
    seconds["heatmaps_cam"], seconds["heatmaps_masks"] = reg.seconds_cam, reg.seconds_masks
    loc: dict[str, Any] = {}
    if dist.is_main:
        loc = _localization(parts[eval_split], eval_split, reg.boxes, class_names, rdir, localization_accuracy)
        _write_auc(rdir / "auc.csv", class_names, ev)
        _write_predictions(rdir / "predictions.csv", parts[eval_split], class_names, ev)
    seconds["total"] = time.perf_counter() - t_round
    fit = rm.fit
    record = {
        "round": k, "guided": guided, "arm": arm, "eval_split": eval_split,
        "heads": list(ev["auc"]), "auc": ev["auc"], "mean_auc": ev["mean_auc"],
        "sources": {name: p.record for name, p in prepared.items()},
        "val_score": fit.best_score, "val_criterion": fit.criterion, "best_epoch": fit.best_epoch,
        "epochs_run": len(fit.history), "stopped_early": fit.stopped_early,
        "loc_iou": loc.get("iou"), "loc_iobb": loc.get("iobb"), "loc_boxes": loc.get("n"),
        "mask_iou": reg.mask_iou, "n_masks": reg.n_rows, "n_masks_empty": reg.n_empty, "n_masks_full": reg.n_full,
        "cam_truth_iou": reg.truth_iou or None, "guidance_truth_iou": guidance_iou or None,
        "guidance_unannotated": unannotated,
        "seconds": {s: (round(v, 3) if not isinstance(v, dict) else {n: round(x, 3) for n, x in v.items()})
                    for s, v in seconds.items()},
        "paths": {"checkpoint": str(rdir / "fit" / "best.pt"), "masks": str(rdir / "masks"),
                  "regions": str(rdir / "regions.csv")},
    }
    record = _jsonable(record)
    if dist.is_distributed:  # the main rank's record (merged regions, localisation) for every rank
        record = dist.broadcast_object(record if dist.is_main else None)
    if dist.is_main:
        with atomic_write(rdir / "round.json") as fh:
            json.dump(record, fh, indent=2, allow_nan=False)
    heads = ", ".join(f"{h} {_fmt(m)}" for h, m in record["mean_auc"].items())
    say(f"round {k} done in {seconds['total']:.1f} s: mean AUC {heads}; localisation T(IoU)=0.1 "
        f"{_fmt((record['loc_iou'] or {}).get('0.1'))}; mask IoU vs previous {_fmt(record['mask_iou'])}")
    return record


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _localization(ds: Any, split: str, boxes: Mapping[tuple[str, int, str], list], class_names: list[str],
                  rdir: Path, localization_accuracy: Callable[..., Any]) -> dict[str, Any]:
    if not callable(getattr(ds, "boxes_at", None)):
        return {}
    truth: dict[tuple[int, str], list] = {}
    for i in range(len(ds)):
        for c, bs in ds.boxes_at(i).items():
            if c in class_names and bs:
                truth[(i, c)] = list(bs)
    if not truth:
        return {}
    pred = {(i, c): boxes.get((split, i, c), []) for (i, c) in truth}
    _write_box_hits(rdir / "localization_boxes.csv", ds, truth, pred)
    out: dict[str, Any] = {"n": len(truth)}
    boxed = sorted({c for _, c in truth}, key=class_names.index)
    for metric in ("iou", "iobb"):
        tab = localization_accuracy(pred, truth, metric=metric, classes=boxed)
        tab.to_csv(rdir / f"localization_{metric}.csv")
        out[metric] = {f"{t:g}": (None if m != m else float(m)) for t, m in zip(tab.thresholds, tab.mean)}
    return out


#: Columns of ``localization_boxes.csv``: one row per ground-truth box of the evaluation split.
BOX_COLUMNS = ["index", "image_id", "class", "x", "y", "w", "h", "iou", "iobb"]


def _write_box_hits(path: Path, ds: Any, truth: Mapping[tuple[int, str], list],
                    pred: Mapping[tuple[int, str], list]) -> None:
    """Each ground-truth box with the best IoU and IoBB of its image's heatmap boxes of its class (0 without
    one): what ``chexradi compare`` resamples to put confidence intervals on localisation accuracy."""
    from ..metrics import box_iobb, box_iou
    from .regions import image_id

    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(BOX_COLUMNS)
        for (i, c), gts in sorted(truth.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            for g in gts:
                ps = pred.get((i, c)) or []
                iou = max((box_iou(p, g) for p in ps), default=0.0)
                iobb = max((box_iobb(p, g) for p in ps), default=0.0)
                w.writerow([i, image_id(ds, i), c, *(float(v) for v in g), repr(float(iou)), repr(float(iobb))])


def _write_predictions(path: Path, ds: Any, class_names: list[str], ev: Mapping[str, Any]) -> None:
    """The evaluation split's targets and each head's probabilities, per image: ``y:<class>``, then
    ``p_<head>:<class>`` for every head (what ``chexradi compare`` pairs between runs: DeLong's test and the
    bootstrap need the scores, not only the AUCs)."""
    from .regions import image_id

    targets, probs = ev["targets"], ev["probs"]
    header = ["index", "image_id"] + [f"y:{c}" for c in class_names]
    for head in probs:
        header += [f"p_{head}:{c}" for c in class_names]
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for i in range(len(targets)):
            row: list[Any] = [i, image_id(ds, i)]
            row += ["" if t != t else int(t) for t in targets[i]]
            for head in probs:
                row += [repr(float(p)) for p in probs[head][i]]
            w.writerow(row)


def _write_auc(path: Path, class_names: list[str], ev: Mapping[str, Any]) -> None:
    """AUC per class (rows, and ``mean``) for every head (``auc_<head>`` columns)."""
    heads = list(ev["auc"])
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["class"] + [f"auc_{h}" for h in heads])
        for c in class_names + ["mean"]:
            vals = [ev["mean_auc"][h] if c == "mean" else ev["auc"][h].get(c) for h in heads]
            w.writerow([c] + ["" if v is None else v for v in vals])
