"""The code blocks of README.md and docs/*.md, read the way tests/test_doc_blocks.py checks them.

``python docs/blocks.py --sync-help`` rewrites every block of docs that is a copy of a command's
``--help`` (a block whose first line is ``Usage: chexradi ...``) from the command itself, run as a
user's terminal would show it (100 columns). The test fails when a copy differs, naming this command.
"""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The documents whose code blocks are checked.
DOCUMENTS = ("README.md", "DEVELOPERS.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")))
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w{}-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
_USAGE = re.compile(r"^Usage: chexradi((?: [a-z][a-z-]*)*) \[OPTIONS\]")
HELP_COLUMNS = "100"


@dataclass(frozen=True)
class Block:
    """One fenced code block: the document, the line its body starts on, the language tag, the body."""

    document: str
    line: int
    lang: str
    body: str

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"

    @property
    def help_of(self) -> tuple[str, ...] | None:
        """The command whose ``--help`` this block copies (``("reportgen", "train")``), or None."""
        m = _USAGE.match(self.body)
        return tuple(m.group(1).split()) if m else None


def lookup(path: str) -> object:
    """The object at a dotted ``path`` (the longest importable module, then attributes).

    Raises ``LookupError`` naming the part that is missing.
    """
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", path):
        raise LookupError(f"{path!r} is not a dotted name")
    parts = path.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for attr in parts[k:]:
            if not hasattr(obj, attr):
                raise LookupError(f"{'.'.join(parts[:k])} has no {attr!r} (looking up {path})")
            obj = getattr(obj, attr)
        return obj
    raise LookupError(f"cannot import {path}")


def blocks(document: str) -> list[Block]:
    """The fenced blocks of ``document`` (a path relative to the repository), in order."""
    text = (REPO / document).read_text()
    out = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start("body")) + 1
        indent = len(m.group("indent"))
        body = "".join(row[indent:] if row[:indent].strip() == "" else row
                       for row in m.group("body").splitlines(keepends=True))
        out.append(Block(document, line, m.group("lang"), body))
    return out


def all_blocks() -> list[Block]:
    return [b for d in DOCUMENTS for b in blocks(d)]


def help_text(command: tuple[str, ...]) -> str:
    """``chexradi COMMAND --help`` as a 100-column terminal shows it."""
    env = {**os.environ, "COLUMNS": HELP_COLUMNS}
    res = subprocess.run([sys.executable, "-m", "chexradi", *command, "--help"], capture_output=True, text=True,
                         env=env, cwd=REPO, check=True)
    return res.stdout


def sync_help() -> list[str]:
    """Rewrite every ``--help`` copy in the docs from the commands; return the blocks changed."""
    changed = []
    for document in DOCUMENTS:
        path = REPO / document
        text = path.read_text()
        for block in reversed(blocks(document)):
            if block.help_of is None:
                continue
            fresh = help_text(block.help_of)
            if fresh != block.body:
                start = sum(len(r) for r in text.splitlines(keepends=True)[:block.line - 1])
                assert text[start:start + len(block.body)] == block.body, block.where
                text = text[:start] + fresh + text[start + len(block.body):]
                changed.append(block.where)
        path.write_text(text)
    return changed


if __name__ == "__main__":
    if sys.argv[1:] != ["--sync-help"]:
        sys.exit("usage: python docs/blocks.py --sync-help")
    print("\n".join(sync_help()) or "every --help copy is current")
