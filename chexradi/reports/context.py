"""Mentions of each label in one sentence, each classified positive, negated or uncertain (ConText).

The algorithm (Harkema et al., J Biomed Inform 2009), as implemented here:

1. **Mentions.** Every label's (and vocabulary finding's) ``mention`` phrases are matched; a match inside one of the
   label's ``exclude`` phrases is dropped ("pericardial effusion" is not Effusion); where
   two matches of one label overlap the longer is kept. A ``negative`` phrase ("normal
   heart size") is a mention whose value is 0 by itself.
2. **Triggers.** The ConText rules are matched in one pass; at one position the longest
   phrase wins, so a pseudo-trigger ("no change in") hides the trigger inside it ("no").
3. **Scope.** A ``forward`` trigger reaches from its end to the end of the sentence, the
   next terminator ("but", "however", "which", "there is" ...) or the next trigger, whichever
   comes first; a ``backward`` trigger reaches back to the sentence start, the previous
   terminator or the previous trigger; ``both`` does both; ``max_words`` shortens either.
   Coordinated phrases fall in one scope: "no pneumothorax, effusion, or focal consolidation"
   negates all three.
4. **Decision.** A mention takes the category of the nearest trigger whose scope covers it
   (or that lies inside the mention itself, as "not" in "heart is not enlarged") and that
   applies to its label; with none it is positive. An ``acute_only`` trigger ("no acute")
   reaches a chronic finding of the vocabulary only within its own noun phrase: a generic head
   noun between them ("disease", "abnormality", "process", "findings") ends its reach, so in
   "no acute disease, stable calcified granuloma" the granuloma stays positive.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from .labelsets import TOKEN, LabelSet, Rule

__all__ = ["Mention", "classify", "POSITIVE", "NEGATIVE", "UNCERTAIN"]

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
_VALUE = {"negated": NEGATIVE, "uncertain": UNCERTAIN}
_WORD = re.compile(r"\w+")
#: Generic head nouns that close the noun phrase of an ``acute_only`` trigger ("no acute disease")
#: for chronic findings after it.
_GENERIC_HEAD = re.compile(r"\b(disease|diseases|abnormalit(y|ies)|process(es)?|findings?|pathology|changes?|"
                           r"injur(y|ies)|problems?)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Mention:
    """One decision: a label mentioned in a sentence, its value and why.

    ``start``/``end`` are offsets in the sentence; ``rule`` says which rule decided
    (``"mention"`` when no trigger applied, ``"negative phrase"``, or the trigger's
    category, direction and phrase, e.g. ``"negated forward 'no'"``); ``trigger`` is the
    trigger's text as written in the report.
    """

    label: str
    value: int
    start: int
    end: int
    text: str
    rule: str
    trigger: str = ""


@dataclass(frozen=True)
class _Trigger:
    rule: Rule
    start: int
    end: int
    text: str


def _spans(rx: Any, text: str) -> list[tuple[int, int]]:
    if rx is None:
        return []
    return [(m.start(), m.end()) for m in rx.finditer(text) if m.end() > m.start()]


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _triggers(text: str, ls: LabelSet) -> list[_Trigger]:
    """Leftmost-longest, non-overlapping trigger matches: literal phrases by token lookup, ``re:`` rules by regex."""
    toks = [(m.start(), m.end(), m.group(0).lower()) for m in TOKEN.finditer(text)]
    words = ls.trigger_words
    found: list[_Trigger] = []
    i, n = 0, len(toks)
    while i < n:
        for k in range(min(ls.trigger_max, n - i), 0, -1):
            idx = words.get(tuple(t[2] for t in toks[i:i + k]))
            if idx is not None:
                a, b = toks[i][0], toks[i + k - 1][1]
                found.append(_Trigger(ls.rules[idx], a, b, text[a:b]))
                i += k
                break
        else:
            i += 1
    if ls.trigger_re is not None:
        extra = [_Trigger(ls.rules[int(m.lastgroup[1:])], m.start(), m.end(), m.group(0))
                 for m in ls.trigger_re.finditer(text) if m.end() > m.start()]
        if extra:
            merged = sorted(found + extra, key=lambda t: (t.start, -(t.end - t.start)))
            found = []
            for t in merged:
                if not found or t.start >= found[-1].end:
                    found.append(t)
    return found


def _scope(t: _Trigger, text: str, bounds: list[_Trigger], side: str) -> tuple[int, int]:
    """Character range a trigger reaches on one side (``"after"`` or ``"before"``)."""
    mw = t.rule.max_words
    if side == "after":
        end = len(text)
        for b in bounds:
            if b.start >= t.end:
                end = b.start
                break
        if mw is not None:
            words = list(_WORD.finditer(text, t.end, end))
            if len(words) > mw:
                end = words[mw - 1].end()
        return t.end, end
    start = 0
    for b in bounds:
        if b.end <= t.start:
            start = b.end
    if mw is not None:
        words = list(_WORD.finditer(text, start, t.start))
        if len(words) > mw:
            start = words[-mw].start()
    return start, t.start


def _mentions(text: str, ls: LabelSet) -> list[tuple[str, int, int, bool]]:
    """(label, start, end, is_negative_phrase), longest-first within a label, excluded ones dropped.

    A label (or finding) whose required literals (:attr:`Label.keys`) are all absent from the
    sentence cannot match and is not searched; one that can is searched with the phrases that
    can match (:meth:`Label.matcher`).
    """
    found = []
    # case folding and the regular expressions' IGNORECASE agree on ASCII only ("İ"): elsewhere no prefilter
    present = ls.keys_in(text.casefold()) if text.isascii() else None
    for name, lab in ls.entries():
        if present is None:
            neg, pos = _spans(lab.negative_re, text), _spans(lab.mention_re, text)
        elif lab.keys is not None and lab.keys.isdisjoint(present):
            continue
        else:
            neg, pos = _spans(lab.matcher("negative", present), text), _spans(lab.matcher("mention", present), text)
        pos = [s for s in pos if not any(_overlaps(s, n) for n in neg)]
        if pos and lab.exclude_re is not None:
            excl = _spans(lab.exclude_re, text)
            pos = [s for s in pos if not any(e[0] <= s[0] and s[1] <= e[1] for e in excl)]
        spans = sorted([(s, False) for s in pos] + [(s, True) for s in neg], key=lambda x: (x[0][1] - x[0][0]),
                       reverse=True)
        kept: list[tuple[tuple[int, int], bool]] = []
        for s, is_neg in spans:
            if not any(_overlaps(s, k) for k, _ in kept):
                kept.append((s, is_neg))
        found.extend((name, s[0], s[1], is_neg) for s, is_neg in kept)
    found.sort(key=lambda x: (x[1], x[2]))
    return found


def _describe(rule: Rule) -> str:
    return f"{rule.category} {rule.direction} {rule.phrase!r}"


def classify(sentence: str, label_set: LabelSet) -> list[Mention]:
    """Every mention of a label in ``sentence`` with its value (1, 0 or -1) and the rule that set it."""
    mentions = _mentions(sentence, label_set)
    if not mentions:
        return []
    trig = _triggers(sentence, label_set)
    active = [t for t in trig if t.rule.category in ("negated", "uncertain")]
    bounds = [t for t in trig if t.rule.category != "pseudo"]
    scopes = []
    for t in active:
        sides = {"forward": ("after",), "backward": ("before",), "both": ("after", "before")}[t.rule.direction]
        others = [b for b in bounds if b is not t and not _overlaps((b.start, b.end), (t.start, t.end))]
        scopes.append((t, [_scope(t, sentence, others, side) for side in sides]))
    out = []
    for label, a, b, is_neg in mentions:
        text = sentence[a:b]
        if is_neg:
            out.append(Mention(label, NEGATIVE, a, b, text, "negative phrase"))
            continue
        best: Optional[tuple[int, int, _Trigger]] = None
        chronic = label in label_set.findings and label_set.findings[label].chronic
        for t, ranges in scopes:
            if not t.rule.applies_to(label):
                continue
            inside = a <= t.start and t.end <= b
            covered = inside or any(lo <= a and b <= hi for lo, hi in ranges)
            if not covered:
                continue
            if chronic and t.rule.acute_only and not inside:
                lo, hi = (t.end, a) if t.end <= a else (b, t.start)  # the words between trigger and mention
                if _GENERIC_HEAD.search(sentence, lo, hi):
                    continue  # "no acute disease, stable calcified granuloma": the granuloma is not negated
            dist = 0 if inside else (a - t.end if t.end <= a else t.start - b)
            # nearest trigger wins; at equal distance uncertainty beats negation
            key = (dist, 0 if t.rule.category == "uncertain" else 1)
            if best is None or key < best[:2]:
                best = (key[0], key[1], t)
        if best is None:
            out.append(Mention(label, POSITIVE, a, b, text, "mention"))
        else:
            t = best[2]
            out.append(Mention(label, _VALUE[t.rule.category], a, b, text, _describe(t.rule), t.text))
    return out
