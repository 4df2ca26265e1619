"""The run directory of :func:`~chexradi.train.fit`: ``last.pt``, ``best.pt`` and ``history.json``.

``best.pt`` carries ``epoch``, ``score``, ``criterion`` and the objective's state (its
fused head and guidance branch belong to the best epoch too); ``last.pt`` carries
``train_state`` (everything a resumed run needs); ``history.json`` the settings,
the package versions and one record per epoch. All three are written atomically.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from torch import Tensor, nn

from .._io import atomic_write

#: Fit settings that change the training trajectory: a resume must use the same.
_TRAJECTORY_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "class_weights", "seed", "max_steps",
                    "objective", "evaluator")

#: What a checkpoint written before a setting was recorded ran with (runs before the evaluator was pluggable
#: were all selected by the classifier's mean AUC).
_SETTING_DEFAULTS = {"evaluator": "ClassifierEvaluator"}

_HISTORY_FORMAT = "chexradi-history/1"


def _json_float(x: float) -> Optional[float]:
    x = float(x)
    return x if math.isfinite(x) else None


def _normalization() -> str:
    from ..data.transforms import NORMALIZATION

    return NORMALIZATION


def _save(path: Path, model: nn.Module, meta: dict[str, Any], **extra: Any) -> None:
    from ..nn.checkpoint import save_checkpoint

    save_checkpoint(path, model, meta=meta, **extra)  # type: ignore[arg-type]


def _write_epoch(out_dir: Path, model: nn.Module, meta: dict[str, Any], settings: dict[str, Any],
                 train_state: dict[str, Any], *, improved: bool, criterion: str) -> None:
    """After an epoch: ``best.pt`` when it improved, then ``last.pt`` and ``history.json``."""
    if improved:
        _save(out_dir / "best.pt", model, meta, epoch=train_state["epoch"], score=train_state["best_score"],
              criterion=criterion, objective=train_state.get("objective"))
    _save(out_dir / "last.pt", model, meta, train_state=train_state)
    _write_history(out_dir / "history.json", settings, model, train_state, criterion)


def _write_history(path: Path, settings: dict[str, Any], model: nn.Module, train_state: Mapping[str, Any],
                   criterion: str) -> None:
    from ..nn.checkpoint import versions

    with atomic_write(path) as f:
        json.dump({
            "format": _HISTORY_FORMAT, "model": dict(getattr(model, "config", {})), "fit": settings,
            "versions": versions(), "best_epoch": train_state["best_epoch"],
            "best_score": _json_float(train_state["best_score"]), "criterion": criterion,
            "stopped_early": train_state["stopped_early"], "finished": train_state["finished"],
            "history": train_state["history"],
        }, f, indent=2, allow_nan=False)


def _load_resume(path: Path, model: nn.Module, settings: dict[str, Any]) -> dict[str, Any]:
    """The ``train_state`` of ``last.pt`` plus its ``state_dict``, checked to continue this run."""
    from ..nn.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    config = dict(getattr(model, "config", {}))
    if ckpt["config"] != config:
        theirs = ckpt["config"]
        diff = sorted(k for k in set(theirs) | set(config) if theirs.get(k) != config.get(k))
        raise ValueError(f"cannot resume from {path}: it holds a {theirs.get('name')} model whose config "
                         f"differs from this {config.get('name')} model in {diff}; use a new out directory, "
                         f"or resume=False to start over there")
    ts = ckpt.get("train_state")
    if not isinstance(ts, dict):
        raise ValueError(f"cannot resume from {path}: it has no training state (not written by "
                         f"chexradi.train.fit); use a new out directory, or resume=False")
    old = dict(ckpt.get("meta", {}).get("fit", {}))
    changed = [f"{k}: {old.get(k, _SETTING_DEFAULTS.get(k))!r} -> {settings[k]!r}" for k in _TRAJECTORY_KEYS
               if old.get(k, _SETTING_DEFAULTS.get(k)) != settings[k]]
    if changed:
        raise ValueError(f"cannot resume from {path}: it was trained with other settings "
                         f"({'; '.join(changed)}); use a new out directory, or resume=False to start over")
    return {**ts, "state_dict": ckpt["state_dict"]}


def _best_weights(best_path: Path, last_path: Path, best_epoch: int) -> tuple[dict[str, Tensor], Any]:
    """The model weights and the objective state (None if it has none) in ``best.pt``, which ``last.pt`` says exists."""
    if not best_path.is_file():
        raise FileNotFoundError(f"{best_path} is missing but {last_path} says epoch {best_epoch} was the "
                                f"best; rerun with resume=False or a new out directory")
    from ..nn.checkpoint import read_checkpoint

    ckpt = read_checkpoint(best_path)
    return ckpt["state_dict"], ckpt.get("objective")
