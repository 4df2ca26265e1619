"""Progress bars on stderr, shared by every stage: shown when asked, or by default when stderr is a
terminal (never in a log file or a CI job)."""
from __future__ import annotations

import sys
from typing import Any, Optional

__all__ = ["progress_on", "progress_bar"]


def progress_on(progress: Optional[bool]) -> bool:
    """``progress`` as given, or, for None, whether stderr is a terminal."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


def progress_bar(progress: Optional[bool], **options: Any) -> Any:
    """A ``tqdm`` bar on stderr (``options``: ``total``, ``initial``, ``desc``, ``unit``, ...), or None when
    :func:`progress_on` says no."""
    if not progress_on(progress):
        return None
    from tqdm import tqdm

    return tqdm(file=sys.stderr, dynamic_ncols=True, **options)
