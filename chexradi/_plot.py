"""matplotlib for the figures chexradi draws: imported on demand with an install hint, saved atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from .about import install_hint

__all__ = ["pyplot", "save_figure"]


def pyplot(who: str) -> Any:
    """``matplotlib.pyplot`` on the Agg backend (unless one is set).

    Raises
    ------
    ImportError
        matplotlib is not installed; the message names ``who`` and the install command.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is in the test environment
        raise ImportError(f"{who} needs matplotlib: {install_hint('plot')} (or pip install matplotlib)") from exc
    return plt


def save_figure(fig: Any, path: Union[str, Path], *, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` (PNG/PDF/SVG by extension; PNG without one) atomically; parents are made."""
    from ._io import atomic_path

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p, suffix=p.suffix or ".png") as tmp:
        fig.savefig(str(tmp), dpi=dpi, format=(p.suffix.lstrip(".") or "png"))
    return p
