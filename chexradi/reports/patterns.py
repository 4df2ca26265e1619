"""Label-set phrases as regular expressions, and the literal prefilter that lets most of them be skipped.

- :func:`phrase_pattern`: one phrase (words, or ``re:`` a regular expression) -> the pattern
  that matches it on whole words;
- :func:`by_length` and :func:`alternation`: phrases joined into one alternation, longest
  source first (at one position the longer phrase wins);
- :func:`required_literals`: the literal strings one of which every match of a pattern
  contains, read from the parsed pattern. A sentence that contains none of a phrase's
  literals cannot match it, so the labeler does not search it with that phrase (an
  alternative that cannot match changes nothing in an alternation).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Optional, Sequence

try:  # the standard library's own pattern parser (private: re._parser from 3.11, sre_parse before)
    from re import _constants, _parser
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _constants  # type: ignore[no-redef]
    import sre_parse as _parser  # type: ignore[no-redef]

__all__ = ["phrase_pattern", "by_length", "alternation", "required_literals"]


def phrase_pattern(phrase: str) -> str:
    """The regular expression of one label-set phrase (``re:...`` as written, held to whole words)."""
    if phrase.startswith("re:"):  # whole words too: "re:mass(es)?" does not match inside "massive"
        return rf"(?<!\w)(?:{phrase[3:].strip()})(?!\w)"
    words = phrase.split()
    body = r"\s+".join(re.escape(w) for w in words)
    start = r"\b" if re.match(r"\w", words[0]) else ""
    end = r"\b" if re.search(r"\w$", words[-1]) else ""
    return f"{start}{body}{end}"


@lru_cache(maxsize=8192)
def alternation(patterns: tuple[str, ...]) -> Any:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def by_length(phrases: Sequence[str]) -> list[str]:
    """The phrases' patterns, longest source first, so that at one position the longer phrase wins."""
    return sorted((phrase_pattern(p) for p in phrases), key=len, reverse=True)


def required_literals(pattern: str) -> Optional[frozenset]:
    """Case-folded literal strings one of which every match of ``pattern`` contains, or ``None``.

    Read from the parsed pattern: a sequence needs its longest literal run (or a part that needs
    one), an alternation one of its branches' literals, a repeat its body's when it repeats at
    least once; anything else (a character class, an optional part, an assertion) needs nothing.
    ``None`` when no literal is needed by every match (such a pattern is always searched).
    """
    return _seq_literals(_parser.parse(pattern, re.IGNORECASE))


def _seq_literals(items: Any) -> Optional[frozenset]:
    c = _constants
    best: Optional[frozenset] = None
    run: list[str] = []

    def better(cand: Optional[frozenset]) -> None:
        nonlocal best
        if cand and (best is None or min(map(len, cand)) > min(map(len, best))):
            best = cand

    for op, av in items:
        if op is c.LITERAL:
            run.append(chr(av))
            continue
        better(frozenset(["".join(run).casefold()]) if run else None)
        run = []
        if op is c.SUBPATTERN:
            better(_seq_literals(av[-1]))
        elif op is c.BRANCH:
            alts = [_seq_literals(b) for b in av[1]]
            better(None if any(a is None for a in alts) else frozenset().union(*alts))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)) and av[0] >= 1:
            better(_seq_literals(av[2]))
    better(frozenset(["".join(run).casefold()]) if run else None)
    return best
