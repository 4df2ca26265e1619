"""Label sets and ConText rules: YAML files, validated on load, compiled to regular expressions.

A *label set* names the labels a report is scored for and, for each, the phrases that
mention it. It is data, not code: the two built-in sets (``chestxray14``, ``chexpert``)
are YAML files in ``chexradi/reports/labelsets/`` and a user's own file has the same form::

    name: my-set
    no_finding: No Finding          # the derived column (null: none)
    no_finding_ignores: []          # labels that do not count against No Finding
    extends: chestxray14            # optional: start from a built-in set (or a file)
    labels:
      Effusion:
        mention:  [pleural effusion, effusions, "re:fluid (in|at) the costophrenic (angle|sulcus)"]
        exclude:  [pericardial effusion]            # contains a mention but is not this finding
        negative: [costophrenic angles are sharp]   # states this finding is absent
    rules:                          # optional ConText rules added to the default ones
      - {phrase: "no sign of", category: negated, direction: forward}

A phrase is matched case-insensitively on word boundaries, with any run of white space
between its words; ``re:`` starts a Python regular expression instead (it too must match
whole words: ``re:mass(es)?`` does not match inside "massive"). With ``extends``,
the listed labels' phrases are added to the base set's (``replace: true`` under a label
replaces them), and new labels are appended.

The ConText rules (``context.yaml``; Harkema et al., J Biomed Inform 2009) are triggers
with a category (``negated``, ``uncertain``, ``pseudo``: a phrase that looks like a trigger
but is not one, ``terminate``: ends a trigger's scope), a direction (``forward``,
``backward``, ``both``), an optional ``max_words`` and an optional ``labels`` list that
restricts the trigger to those labels.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence, Union

__all__ = ["LabelSet", "Label", "Rule", "LabelSetError", "load_label_set", "load_rules", "BUILTIN_SETS",
           "CATEGORIES", "DIRECTIONS", "phrase_pattern"]

PathLike = Union[str, "os.PathLike[str]"]
LABELSETS_DIR = Path(__file__).with_name("labelsets")
#: Built-in label sets (``chexradi/reports/labelsets/<name>.yaml``).
BUILTIN_SETS = ("chestxray14", "chexpert")
CATEGORIES = ("negated", "uncertain", "pseudo", "terminate")
DIRECTIONS = ("forward", "backward", "both")
_LABEL_KEYS = {"mention", "exclude", "negative", "replace"}
_SET_KEYS = {"name", "no_finding", "no_finding_ignores", "extends", "labels", "rules", "description"}
_RULE_KEYS = {"phrase", "category", "direction", "max_words", "labels"}


class LabelSetError(ValueError):
    """A label-set or rules file that cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class Rule:
    """One ConText trigger."""

    phrase: str
    category: str
    direction: str = "forward"
    max_words: Optional[int] = None
    labels: Optional[frozenset] = None

    def applies_to(self, label: str) -> bool:
        return self.labels is None or label in self.labels


@dataclass
class Label:
    """One label's phrases (source strings, as written in the file) and their compiled patterns."""

    name: str
    mention: list[str]
    exclude: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    mention_re: Any = None
    exclude_re: Any = None
    negative_re: Any = None


@dataclass
class LabelSet:
    """A validated label set with its ConText rules, ready to match.

    Attributes
    ----------
    name : str
    labels : dict
        Label name -> :class:`Label`, in column order.
    no_finding : str or None
        Name of the derived "No Finding" column.
    no_finding_ignores : tuple of str
        Labels whose positive or uncertain value does not clear No Finding.
    rules : list of Rule
        The ConText triggers (the default ones, then the set's own).
    source : str
        Where the set was read from.
    """

    name: str
    labels: dict[str, Label]
    no_finding: Optional[str]
    no_finding_ignores: tuple[str, ...]
    rules: list[Rule]
    source: str
    trigger_re: Any = None
    trigger_words: dict = field(default_factory=dict)
    trigger_max: int = 0
    any_mention_re: Any = None

    @property
    def names(self) -> tuple[str, ...]:
        """The label columns, in order (without No Finding)."""
        return tuple(self.labels)

    @property
    def columns(self) -> tuple[str, ...]:
        """The output columns: the labels, then No Finding when the set has it."""
        return self.names + ((self.no_finding,) if self.no_finding else ())


def phrase_pattern(phrase: str) -> str:
    """The regular expression of one label-set phrase (``re:...`` as written, held to whole words)."""
    if phrase.startswith("re:"):  # whole words too: "re:mass(es)?" does not match inside "massive"
        return rf"(?<!\w)(?:{phrase[3:].strip()})(?!\w)"
    words = phrase.split()
    body = r"\s+".join(re.escape(w) for w in words)
    start = r"\b" if re.match(r"\w", words[0]) else ""
    end = r"\b" if re.search(r"\w$", words[-1]) else ""
    return f"{start}{body}{end}"


def _where(source: str, what: str) -> str:
    return f"{source}: {what}"


def _compile(phrases: Sequence[str], source: str, what: str) -> Any:
    if not phrases:
        return None
    parts = []
    for p in phrases:
        pat = phrase_pattern(p)
        try:
            rx = re.compile(pat, re.IGNORECASE)
        except re.error as exc:
            raise LabelSetError(_where(source, f"{what}: the regular expression {p!r} does not compile ({exc}); "
                                                 "fix it, or drop the 're:' prefix to match the words literally."))
        if rx.match(""):
            raise LabelSetError(_where(source, f"{what}: the phrase {p!r} matches the empty string; "
                                                 "it would mark every sentence."))
        parts.append(pat)
    # longest source first, so that at one position the longer phrase wins
    parts.sort(key=len, reverse=True)
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


def _phrases(value: Any, source: str, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        raise LabelSetError(_where(source, f"{what} is {value!r}: YAML reads an unquoted no/yes/on/off as a "
                                             "boolean; quote the phrase, e.g. \"no\"."))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise LabelSetError(_where(source, f"{what} must be a list of phrases, got {type(value).__name__}."))
    out: list[str] = []
    seen: set[str] = set()
    for i, p in enumerate(value):
        if isinstance(p, bool):
            raise LabelSetError(_where(source, f"{what} item {i + 1} is {p!r}: YAML reads an unquoted "
                                                 "no/yes/on/off as a boolean; quote the phrase, e.g. \"no\"."))
        if not isinstance(p, str) or not p.strip() or (p.startswith("re:") and not p[3:].strip()):
            raise LabelSetError(_where(source, f"{what} item {i + 1} is {p!r}; each phrase must be a non-empty "
                                                 "string (quote it in YAML if it starts with a special character)."))
        key = " ".join(p.lower().split())
        if key in seen:
            raise LabelSetError(_where(source, f"{what}: the phrase {p!r} is listed twice; remove one."))
        seen.add(key)
        out.append(p.strip())
    return out


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabelSetError(f"{path}: cannot read the label-set file ({exc.strerror or exc}).") from None
    except UnicodeDecodeError:
        raise LabelSetError(f"{path}: not UTF-8 text; save the label set as UTF-8 YAML.") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise LabelSetError(f"{path}: not valid YAML{at} ({getattr(exc, 'problem', None) or exc}).") from None


def _parse_rules(items: Any, source: str, label_names: Optional[Sequence[str]] = None) -> list[Rule]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise LabelSetError(_where(source, f"'rules' must be a list of rules, got {type(items).__name__}."))
    rules = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        what = f"rule {i + 1}"
        if not isinstance(item, dict):
            raise LabelSetError(_where(source, f"{what} must be a mapping with phrase, category, direction; "
                                                 f"got {item!r}."))
        unknown = sorted(set(item) - _RULE_KEYS)
        if unknown:
            raise LabelSetError(_where(source, f"{what} ({item.get('phrase')!r}): unknown keys {unknown}; "
                                                 f"a rule has {sorted(_RULE_KEYS)}."))
        phrase = _phrases(item.get("phrase"), source, f"{what} phrase")
        if len(phrase) != 1:
            raise LabelSetError(_where(source, f"{what}: 'phrase' must be one phrase."))
        cat = item.get("category")
        if cat not in CATEGORIES:
            raise LabelSetError(_where(source, f"{what} ({phrase[0]!r}): category {cat!r} is not one of "
                                                 f"{', '.join(CATEGORIES)}."))
        direction = item.get("direction", "forward")
        if direction not in DIRECTIONS:
            raise LabelSetError(_where(source, f"{what} ({phrase[0]!r}): direction {direction!r} is not one of "
                                                 f"{', '.join(DIRECTIONS)}."))
        mw = item.get("max_words")
        if mw is not None and (isinstance(mw, bool) or not isinstance(mw, int) or mw < 1):
            raise LabelSetError(_where(source, f"{what} ({phrase[0]!r}): max_words must be a positive integer, "
                                                 f"got {mw!r}."))
        labels = item.get("labels")
        if labels is not None:
            labels = _phrases(labels, source, f"{what} labels")
            if label_names is not None:
                bad = [lab for lab in labels if lab not in label_names]
                if bad:
                    raise LabelSetError(_where(source, f"{what} ({phrase[0]!r}): labels {bad} are not labels of "
                                                         f"the set ({', '.join(label_names)})."))
            labels = frozenset(labels)
        _compile(phrase, source, f"{what}")
        key = " ".join(phrase[0].lower().split())
        if key in seen:
            raise LabelSetError(_where(source, f"{what}: the phrase {phrase[0]!r} is already rule {seen[key]}; "
                                                 "keep one."))
        seen[key] = i + 1
        rules.append(Rule(phrase[0], cat, direction, mw, labels))
    return rules


@lru_cache(maxsize=4)
def _default_rules() -> tuple[Rule, ...]:
    path = LABELSETS_DIR / "context.yaml"
    data = _read_yaml(path)
    if not isinstance(data, dict) or set(data) - {"rules", "description"}:
        raise LabelSetError(f"{path}: expected a mapping with 'rules'.")
    return tuple(_parse_rules(data.get("rules"), str(path)))


def load_rules(path: Optional[PathLike] = None) -> list[Rule]:
    """The default ConText rules, or the rules of a YAML file with a top-level ``rules`` list."""
    if path is None:
        return list(_default_rules())
    p = Path(path)
    data = _read_yaml(p)
    if not isinstance(data, dict) or "rules" not in data:
        raise LabelSetError(f"{p}: expected a mapping with a 'rules' list.")
    return _parse_rules(data["rules"], str(p))


def _resolve(spec: PathLike) -> Path:
    if isinstance(spec, str) and spec in BUILTIN_SETS:
        return LABELSETS_DIR / f"{spec}.yaml"
    p = Path(spec)
    if p.is_file():
        return p
    if isinstance(spec, str) and os.sep not in spec and not spec.endswith((".yaml", ".yml")):
        raise LabelSetError(f"unknown label set {spec!r}: use one of {', '.join(BUILTIN_SETS)} or the path of a "
                              "YAML label-set file (see docs/reports.md).")
    raise LabelSetError(f"label set file {p} not found; pass one of {', '.join(BUILTIN_SETS)} or an existing "
                          "YAML label-set file.")


def _raw_set(spec: PathLike, depth: int = 0) -> tuple[dict[str, Any], str]:
    path = _resolve(spec)
    source = str(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise LabelSetError(f"{source}: a label set is a mapping with 'name' and 'labels'; got "
                              f"{type(data).__name__}.")
    unknown = sorted(set(data) - _SET_KEYS)
    if unknown:
        raise LabelSetError(f"{source}: unknown keys {unknown}; a label set has {sorted(_SET_KEYS)}.")
    labels = data.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise LabelSetError(f"{source}: 'labels' must be a non-empty mapping of label name -> phrases.")
    base: dict[str, Any] = {"labels": {}, "rules": [], "no_finding": "No Finding", "no_finding_ignores": []}
    if data.get("extends") is not None:
        if depth > 4:
            raise LabelSetError(f"{source}: 'extends' chains deeper than 5 files (a loop?).")
        ext = data["extends"]
        if not isinstance(ext, str):
            raise LabelSetError(f"{source}: 'extends' must name a built-in set or a file, got {ext!r}.")
        looks_like_path = "/" in ext or os.sep in ext or ext.endswith((".yaml", ".yml"))
        if ext not in BUILTIN_SETS and looks_like_path and not Path(ext).is_absolute():
            ext = str(path.parent / ext)
        base, _ = _raw_set(ext, depth + 1)
        base = {**base, "labels": {k: dict(v) for k, v in base["labels"].items()}, "rules": list(base["rules"])}
    merged = base["labels"]
    for name, entry in labels.items():
        if not isinstance(name, str) or not name.strip():
            raise LabelSetError(f"{source}: label name {name!r} must be a non-empty string.")
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise LabelSetError(f"{source}: label {name!r} must be a mapping with 'mention' (and optionally "
                                  f"'exclude', 'negative'); got {type(entry).__name__}.")
        bad = sorted(set(entry) - _LABEL_KEYS)
        if bad:
            raise LabelSetError(f"{source}: label {name!r}: unknown keys {bad}; a label has mention, exclude, "
                                  "negative (and replace, with extends).")
        cur = merged.get(name) if not entry.get("replace") else None
        new = {}
        for key in ("mention", "exclude", "negative"):
            phr = _phrases(entry.get(key), source, f"label {name!r} {key}")
            old = list(cur.get(key, [])) if cur else []
            old_keys = {" ".join(p.lower().split()) for p in old}
            new[key] = old + [p for p in phr if " ".join(p.lower().split()) not in old_keys]
        if not new["mention"]:
            raise LabelSetError(f"{source}: label {name!r} has no 'mention' phrases; list at least one.")
        merged[name] = new
    for key in ("no_finding", "no_finding_ignores"):
        if key in data:
            base[key] = data[key]
    nf = base["no_finding"]
    if nf is not None and (not isinstance(nf, str) or not nf.strip()):
        raise LabelSetError(f"{source}: 'no_finding' must be a column name or null, got {nf!r}.")
    if nf in merged:
        raise LabelSetError(f"{source}: 'no_finding' {nf!r} is also a label; No Finding is derived from the "
                              "others, so remove it from 'labels'.")
    ign = _phrases(base["no_finding_ignores"], source, "no_finding_ignores")
    missing = [x for x in ign if x not in merged]
    if missing:
        raise LabelSetError(f"{source}: no_finding_ignores {missing} are not labels of the set.")
    base["no_finding_ignores"] = ign
    base["rules"] = list(base["rules"]) + _parse_rules(data.get("rules"), source, list(merged))
    base["name"] = str(data.get("name") or path.stem)
    return base, source


@lru_cache(maxsize=16)
def _load_cached(key: str, mtime: float) -> LabelSet:
    raw, source = _raw_set(key)
    labels = {}
    for name, entry in raw["labels"].items():
        lab = Label(name, entry["mention"], entry["exclude"], entry["negative"])
        lab.mention_re = _compile(lab.mention, source, f"label {name!r} mention")
        lab.exclude_re = _compile(lab.exclude, source, f"label {name!r} exclude")
        lab.negative_re = _compile(lab.negative, source, f"label {name!r} negative")
        labels[name] = lab
    rules = list(_default_rules()) + raw["rules"]
    ls = LabelSet(raw["name"], labels, raw["no_finding"], tuple(raw["no_finding_ignores"]), rules, source)
    ls.trigger_words, ls.trigger_max, ls.trigger_re = _trigger_index(rules)
    every = [p for lab in labels.values() for p in lab.mention + lab.negative]
    ls.any_mention_re = _compile(every, source, "mentions")
    return ls


#: Words and single punctuation marks: how literal trigger phrases and sentences are split.
TOKEN = re.compile(r"\w+|[^\w\s]")


def _trigger_index(rules: Sequence[Rule]) -> tuple[dict, int, Any]:
    """Literal triggers as ``{lower-case token tuple: rule index}`` (the first rule wins a duplicate),
    their longest length in tokens, and one regex (named group ``r<i>`` per rule) for ``re:`` rules."""
    words: dict[tuple[str, ...], int] = {}
    regex = []
    for i, r in enumerate(rules):
        if r.phrase.startswith("re:"):
            regex.append(i)
        else:
            words[tuple(t.lower() for t in TOKEN.findall(r.phrase))] = i  # a later rule (the set's own) wins
    order = sorted(regex, key=lambda i: len(phrase_pattern(rules[i].phrase)), reverse=True)
    rx = re.compile("|".join(f"(?P<r{i}>{phrase_pattern(rules[i].phrase)})" for i in order),
                    re.IGNORECASE) if order else None
    return words, max((len(k) for k in words), default=0), rx


def load_label_set(labels: Union[str, PathLike, LabelSet] = "chestxray14") -> LabelSet:
    """A validated :class:`LabelSet`: a built-in name (:data:`BUILTIN_SETS`), a YAML file, or a set as it is.

    Raises
    ------
    LabelSetError
        Unknown name, missing file, bad YAML (with line and column), unknown keys, empty or
        duplicate phrases, regular expressions that do not compile or match the empty string,
        rules with an unknown category or direction.
    """
    if isinstance(labels, LabelSet):
        return labels
    path = _resolve(labels)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    key = labels if isinstance(labels, str) and labels in BUILTIN_SETS else str(path.resolve())
    return _load_cached(key, mtime)
