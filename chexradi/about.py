"""chexradi's version and the versions of what it runs on: what ``chexradi --version`` prints.

The version is written once, as ``chexradi.__version__``; ``pyproject.toml`` reads it from there
(``[tool.setuptools.dynamic]``). The dependencies and extras are not listed here either: they are
read from the installed distribution's metadata (``Requires-Dist``), i.e. from ``pyproject.toml``.
Nothing is imported to find a version, so this stays fast and torch-free; ``importlib.metadata`` itself
(~15 ms) is imported only when a version is asked for, not by the commands that import this module for
:func:`install_hint`.
"""
from __future__ import annotations

import platform
import re
import shutil
from typing import NamedTuple, Optional

from . import __version__

__all__ = ["DEVELOPMENT_EXTRAS", "Requirement", "install_hint", "requirements", "report", "version_lines"]

#: Extras that only serve development (not reported by ``--version``, not named in install hints).
DEVELOPMENT_EXTRAS = ("test", "docs")

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


class Requirement(NamedTuple):
    """One ``Requires-Dist`` line: the distribution, and its extra (None for a core dependency)."""

    name: str
    extra: Optional[str]


def install_hint(extra: str) -> str:
    """The command that installs an extra, quoted for every shell: ``pip install "chexradi[plot]"``."""
    return f'pip install "chexradi[{extra}]"'


def requirements(distribution: str = "chexradi") -> list[Requirement]:
    """The installed distribution's requirements, in its metadata's order.

    Raises ``metadata.PackageNotFoundError`` when chexradi is not installed (run from a checkout
    that is only on ``sys.path``).
    """
    from importlib import metadata

    out = []
    for line in metadata.requires(distribution) or []:
        spec, _, marker = line.partition(";")
        name = _NAME.match(spec).group(1)
        extra = _EXTRA.search(marker)
        out.append(Requirement(name, extra.group(1) if extra else None))
    return out


def _installed(name: str) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def report() -> list[tuple[str, str]]:
    """``[(what, version or why not)]``: chexradi, Python, each core dependency, each extra's packages, Java."""
    from importlib import metadata

    rows = [("chexradi", __version__), ("python", platform.python_version())]
    try:
        reqs = requirements()
    except metadata.PackageNotFoundError:
        rows.append(("dependencies", "unknown: chexradi is not installed (pip install -e . or pip install chexradi)"))
        return rows
    seen = set()
    for req in reqs:
        if req.extra in DEVELOPMENT_EXTRAS or req.name.lower() in seen:
            continue
        seen.add(req.name.lower())
        extras = [] if req.extra is None else sorted({r.extra for r in reqs if r.name.lower() == req.name.lower()
                                                      and r.extra and r.extra not in DEVELOPMENT_EXTRAS})
        version = _installed(req.name)
        if version is None:
            # the most specific extra that brings it (matplotlib: plot, which brings nothing else, not demo)
            size = {e: sum(r.extra == e for r in reqs) for e in extras}
            hint = install_hint(min(extras, key=lambda e: (size[e], e))) if extras else f"pip install {req.name}"
            version = f"not installed ({hint})"
        label = f"{req.name} [{', '.join(extras)}]" if extras else req.name
        rows.append((label, version))
    java = shutil.which("java")
    rows.append(("java (METEOR)", java if java else "not found: METEOR is reported as unavailable "
                 "(install a Java runtime, e.g. apt-get install default-jre-headless)"))
    return rows


def version_lines() -> str:
    """``chexradi --version``'s text: ``chexradi X.Y.Z`` first, then one aligned line per package."""
    rows = report()
    width = max(len(k) for k, _ in rows[1:])
    return "\n".join([f"chexradi {rows[0][1]}"] + [f"  {k:<{width}}  {v}" for k, v in rows[1:]])
