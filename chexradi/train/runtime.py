"""How :func:`~chexradi.train.fit` and :func:`~chexradi.train.predict` run: device, AMP, argument checks,
random generators, optimizer and train/eval mode."""
from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Mapping
from typing import Any, Iterable, Iterator, Optional

import numpy as np
import torch
from torch import Tensor, nn

# ----------------------------------------------------------------------------- device and precision


def _resolve_amp(amp: Any, device: torch.device) -> tuple[bool, Optional[torch.dtype]]:
    """AMP on/off and its dtype: float16 (+ GradScaler) on CUDA, bfloat16 on CPU."""
    if amp is not None and not isinstance(amp, bool):
        raise ValueError(f"amp must be None (automatic: on for CUDA), True or False, got {amp!r}")
    on = device.type == "cuda" if amp is None else amp
    if not on:
        return False, None
    if device.type == "cuda":
        return True, torch.float16
    if device.type == "cpu":
        return True, torch.bfloat16
    raise ValueError(f"amp=True is supported on CUDA (float16) and CPU (bfloat16), not on {device.type}; "
                     f"pass amp=False")


def _autocast(device: torch.device, dtype: Optional[torch.dtype]) -> Any:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def _cudnn_deterministic(device: torch.device) -> Iterator[None]:
    if device.type != "cuda":
        yield
        return
    before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before


# ----------------------------------------------------------------------------- arguments and progress

def _check_int(value: Any, name: str, minimum: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}{hint}")
    return int(value)


def _check_float(value: Any, name: str, *, positive: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not math.isfinite(v) or (v <= 0 if positive else v < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return v


def _check_progress(progress: Any) -> None:
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress must be None (automatic), True or False, got {progress!r}")


def _progress(iterable: Iterable, show: bool, desc: str) -> Any:
    if not show:
        return iterable
    from tqdm.auto import tqdm

    total = None
    try:
        total = len(iterable)  # type: ignore[arg-type]
    except TypeError:
        pass
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


# ----------------------------------------------------------------------------- random generators

def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def _derive_seeds(seed: int, epoch: int) -> tuple[int, int]:
    """Two 63-bit seeds (global generators, shuffle order) for ``epoch`` of a run seeded ``seed``."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(4, dtype=np.uint32).astype(np.uint64)
    a = int((state[0] << np.uint64(31)) ^ state[1]) & (2 ** 63 - 1)
    b = int((state[2] << np.uint64(31)) ^ state[3]) & (2 ** 63 - 1)
    return a, b


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                              "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping[str, Any]) -> None:
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "numpy" in states:
        np.random.set_state(states["numpy"])
    if "python" in states:
        random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


# ----------------------------------------------------------------------------- optimizer and mode

def _objective_parameters(objective: Any) -> list[Tensor]:
    params = getattr(objective, "parameters", None)
    if not callable(params):
        return []
    return [p for p in params() if isinstance(p, Tensor) and p.requires_grad]


def _adamw(params: list[Tensor], *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel for all parameters; far faster on CPU) where this torch supports it."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _set_mode(model: nn.Module, objective: Any, train: bool) -> None:
    model.train(train)
    if isinstance(objective, nn.Module):
        objective.train(train)


def _cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate as a cosine from its peak to 0 over ``total_steps`` steps, without warm-up."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)))
