"""Where the benchmarks write their results: JSON through a temporary file renamed onto the path."""
from __future__ import annotations

import json
from pathlib import Path


def write_results(path: Path, payload: dict) -> None:
    """Write a benchmark's results as JSON through a temporary file renamed onto ``path``, and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)
    print(f"\nJSON: {path}")
