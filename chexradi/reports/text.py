"""Report text: the sections to read and their sentences, with character offsets into the report.

- :func:`find_sections` splits a report at its headers (``FINDINGS:``, ``IMPRESSION:``,
  ``INDICATION:`` ... at the start of a line, or after a sentence end, in any case).
- :func:`sections_to_read` keeps Findings and Impression (and Conclusion / Summary / Opinion,
  their synonyms); a report with none of them is read whole, less the sections that describe
  the request rather than the image (indication, history, comparison, technique).
- :func:`sentences` splits a section into sentences at ``.``, ``!``, ``?``, ``;`` and blank
  lines, without splitting decimals ("1.5 cm"), list numbers ("1. Opacity") or common
  abbreviations ("e.g.", "approx.", "Dr.").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Sequence

__all__ = ["Section", "Sentence", "find_sections", "sections_to_read", "sentences", "READ_SECTIONS", "SKIP_SECTIONS",
           "IMPRESSION_SYNONYMS"]

#: Headers that mean the Impression.
IMPRESSION_SYNONYMS = ("conclusion", "conclusions", "summary", "opinion", "interpretation")
#: Section names read when present (Findings and Impression, and the Impression's synonyms).
READ_SECTIONS = ("findings", "impression") + IMPRESSION_SYNONYMS
#: Sections never read — they state the question, not the answer ("r/o pneumonia").
SKIP_SECTIONS = ("indication", "indications", "history", "clinical history", "clinical information",
                 "reason for exam", "reason for examination", "reason for study", "comparison", "comparisons",
                 "technique", "procedure", "examination", "exam", "type of examination", "clinical indication",
                 "notification", "recommendation", "recommendations", "signed by", "dictated by", "wet read",
                 "clinical data", "clinical details", "clinical question", "preliminary report")

_HEADER = re.compile(
    r"(?:^|(?<=[.\n]))[ \t]*(?P<name>" + "|".join(
        re.escape(n).replace(r"\ ", r"\s+") for n in sorted(READ_SECTIONS + SKIP_SECTIONS + ("final report",),
                                                            key=len, reverse=True)
    ) + r")[ \t]*:", re.IGNORECASE | re.MULTILINE)

_ABBREV = ("e.g", "i.e", "approx", "dr", "mr", "mrs", "ms", "vs", "cf", "fig", "etc", "st", "pt", "resp",
           "incl", "ca", "viz", "al")
_BREAK = re.compile(r"(?:[.!?;]+(?=\s|$)|\n[ \t]*\n)")
_LIST_NUMBER = re.compile(r"(?:^|[.:;!?]\s+|\n\s*)\(?\d{1,2}\.$")  # "1." opening a list item


@dataclass(frozen=True)
class Section:
    """A part of the report: its lower-case name (``""`` before the first header) and where its body is."""

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class Sentence:
    """A sentence: its text, its offsets in the report, and the section it is in."""

    text: str
    start: int
    end: int
    section: str


def find_sections(text: str) -> list[Section]:
    """Every section of ``text`` in order; the text before the first header is section ``""``."""
    out: list[Section] = []
    pos, name = 0, ""
    for m in _HEADER.finditer(text):
        if m.start() > pos or name or out:
            out.append(Section(name, pos, m.start()))
        name = " ".join(m.group("name").lower().split())
        pos = m.end()
    out.append(Section(name, pos, len(text)))
    return [s for s in out if text[s.start:s.end].strip() or s.name]


def sections_to_read(text: str, read: Sequence[str] = READ_SECTIONS) -> list[Section]:
    """The sections to label: those named in ``read`` if any, else all but :data:`SKIP_SECTIONS`."""
    secs = find_sections(text)
    wanted = {r.lower() for r in read}
    chosen = [s for s in secs if s.name in wanted and text[s.start:s.end].strip()]
    if chosen:
        return chosen
    return [s for s in secs if s.name not in SKIP_SECTIONS and text[s.start:s.end].strip()]


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the ``.`` at ``dot`` ends an abbreviation or a list number rather than a sentence."""
    if text[dot] != ".":
        return False
    if _LIST_NUMBER.search(text, max(0, dot - 8), dot + 1):
        return True
    head = text[max(0, dot - 8):dot]
    word = re.search(r"([A-Za-z.]+)$", head)
    return bool(word) and word.group(1).lower() in _ABBREV


def sentences(text: str, sections: Sequence[Section]) -> Iterator[Sentence]:
    """The sentences of the given sections of ``text`` (stripped, empty ones dropped)."""
    for sec in sections:
        body = text[sec.start:sec.end]
        start = 0
        for m in _BREAK.finditer(body):
            if m.group(0).startswith(".") and len(m.group(0)) == 1 and _is_abbreviation(body, m.start()):
                continue
            yield from _emit(text, sec, start, m.end())
            start = m.end()
        yield from _emit(text, sec, start, len(body))


def _emit(text: str, sec: Section, a: int, b: int) -> Iterator[Sentence]:
    piece = text[sec.start + a:sec.start + b]
    lead = len(piece) - len(piece.lstrip())
    core = piece.strip()
    if core and re.search(r"\w", core):
        s = sec.start + a + lead
        yield Sentence(core, s, s + len(core), sec.name)
