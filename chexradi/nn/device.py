"""Which torch device to run on: one resolution, with clear errors, for training and inference."""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["resolve_device"]


def resolve_device(device: Any) -> torch.device:
    """``None`` -> ``cuda`` when available, else ``cpu``; otherwise the named device, checked to exist.

    Raises
    ------
    ValueError
        Not a device name, CUDA/MPS asked for but not available, or a CUDA index past the device count.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be a string such as 'cpu', 'cuda' or 'cuda:1', got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"device {device!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r} asks for CUDA, but torch.cuda.is_available() is False "
                             f"(no GPU, or a CPU-only torch); use device='cpu' or device=None")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={str(device)!r}: there are only {torch.cuda.device_count()} CUDA "
                             f"device(s); use 'cuda:0' .. 'cuda:{torch.cuda.device_count() - 1}'")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device={str(device)!r} asks for MPS, which is not available; use 'cpu'")
    elif dev.type != "cpu":
        raise ValueError(f"device {str(device)!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'")
    return dev
