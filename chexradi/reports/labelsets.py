"""Label sets and ConText rules: YAML files, validated on load, compiled to regular expressions.

A *label set* names the labels a report is scored for and, for each, the phrases that
mention it. It is data, not code: the two built-in sets (``chestxray14``, ``chexpert``)
are YAML files in ``chexradi/reports/labelsets/`` and a user's own file has the same form::

    name: my-set
    no_finding: No Finding          # the derived column (null: none)
    no_finding_ignores: []          # labels that do not count against No Finding
    normal: Normal                  # the derived "no abnormality of any kind" column (null: none)
    findings: findings              # the vocabulary of abnormal findings Normal also reads (null: none)
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

A *vocabulary* (``findings.yaml``, built in, or a user's file named by ``findings:``) lists
abnormal findings that are not labels of the set — granulomas, degenerative change,
scoliosis, surgical material, hyperinflation, tortuous aorta ... — in the same form as the
labels, under ``findings:`` instead of ``labels:`` (with ``extends: findings`` to add to the
built-in one). Their mentions are classified by the same ConText rules and kept as evidence;
they give no column of their own but make ``Normal`` 0. A finding may say ``chronic: true``:
then a trigger marked ``acute_only`` ("no acute") negates it only within its own noun phrase,
not past a generic head noun such as "disease" or "abnormality" ("no acute displaced rib
fractures" is negated; in "no acute disease, stable calcified granuloma" the granuloma is not).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ..names import NO_FINDING, NORMAL
from .patterns import alternation, by_length, phrase_pattern, required_literals

__all__ = ["LabelSet", "Label", "Rule", "LabelSetError", "load_label_set", "load_rules", "BUILTIN_SETS",
           "BUILTIN_VOCABULARIES", "CATEGORIES", "DIRECTIONS", "phrase_pattern"]

PathLike = Union[str, "os.PathLike[str]"]
LABELSETS_DIR = Path(__file__).with_name("labelsets")
#: Built-in label sets (``chexradi/reports/labelsets/<name>.yaml``).
BUILTIN_SETS = ("chestxray14", "chexpert")
#: Built-in vocabularies of abnormal findings (``chexradi/reports/labelsets/<name>.yaml``).
BUILTIN_VOCABULARIES = ("findings",)
CATEGORIES = ("negated", "uncertain", "pseudo", "terminate")
DIRECTIONS = ("forward", "backward", "both")
_LABEL_KEYS = {"mention", "exclude", "negative", "replace"}
_FINDING_KEYS = _LABEL_KEYS | {"chronic"}
_SET_KEYS = {"name", "no_finding", "no_finding_ignores", "normal", "findings", "extends", "labels", "rules",
             "description"}
_VOCABULARY_KEYS = {"name", "extends", "findings", "description"}
_RULE_KEYS = {"phrase", "category", "direction", "max_words", "labels", "acute_only"}


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
    acute_only: bool = False

    def applies_to(self, label: str) -> bool:
        return self.labels is None or label in self.labels


@dataclass
class Label:
    """One label's phrases (source strings, as written in the file) and their compiled patterns.

    ``keys``: case-folded literal strings one of which every match of a ``mention`` or
    ``negative`` phrase contains (:func:`required_literals`), so that a sentence containing
    none of them (:meth:`LabelSet.keys_in`) is not searched; ``None`` when a phrase has no such
    literal (always searched). :meth:`matcher` goes one step further: it searches a sentence
    with only the phrases whose own literals are in it (an alternative that cannot match
    changes nothing in an alternation, so the matches are those of the whole pattern).
    """

    name: str
    mention: list[str]
    exclude: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    chronic: bool = False
    keys: Optional[frozenset] = None
    parts: dict = field(default_factory=dict)
    mention_re: Any = None
    exclude_re: Any = None
    negative_re: Any = None

    def matcher(self, kind: str, present: frozenset) -> Any:
        """The ``mention`` or ``negative`` pattern restricted to the phrases that can match a
        sentence whose literals are ``present`` (:meth:`LabelSet.keys_in`; ``None``: none can)."""
        parts = self.parts.get(kind)
        if not parts:
            return None
        idx = tuple(i for i, (_, keys) in enumerate(parts) if keys is None or not keys.isdisjoint(present))
        if not idx:
            return None
        if len(idx) == len(parts):
            return self.mention_re if kind == "mention" else self.negative_re
        return alternation(tuple(parts[i][0] for i in idx))


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
    normal : str or None
        Name of the derived "Normal" column: 1 when no label and no finding of the vocabulary
        is positive or uncertain.
    findings : dict
        The vocabulary's findings: name -> :class:`Label` (no columns of their own).
    vocabulary : str
        Where the vocabulary was read from (``""``: none).
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
    normal: Optional[str] = None
    findings: dict[str, Label] = field(default_factory=dict)
    vocabulary: str = ""
    vocabulary_files: tuple = ()
    vocabulary_mtime: tuple = ()
    trigger_re: Any = None
    trigger_words: dict = field(default_factory=dict)
    trigger_max: int = 0
    key_index: dict = field(default_factory=dict)
    short_keys: tuple = ()

    def keys_in(self, folded: str) -> frozenset:
        """The entries' required literals (``Label.keys``) that occur in a case-folded sentence."""
        found = {k for k in self.short_keys if k in folded}
        index = self.key_index
        for i in range(len(folded) - 2):
            cands = index.get(folded[i:i + 3])
            if cands:
                found.update(k for k in cands if folded.startswith(k, i))
        return frozenset(found)

    @property
    def names(self) -> tuple[str, ...]:
        """The label columns, in order (without No Finding)."""
        return tuple(self.labels)

    @property
    def columns(self) -> tuple[str, ...]:
        """The output columns — the labels, then No Finding and Normal when the set has them."""
        return self.names + tuple(c for c in (self.no_finding, self.normal) if c)

    @property
    def derived(self) -> tuple[str, ...]:
        """The derived columns (No Finding, Normal) — the absence of findings, not classes."""
        return tuple(c for c in (self.no_finding, self.normal) if c)

    def entries(self) -> list[tuple[str, Label]]:
        """Every label, then every finding of the vocabulary, as (name, :class:`Label`)."""
        return list(self.labels.items()) + list(self.findings.items())


def _where(source: str, what: str) -> str:
    return f"{source}: {what}"


def _compile(phrases: Sequence[str], source: str, what: str) -> Any:
    if not phrases:
        return None
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
    return re.compile("|".join(f"(?:{p})" for p in by_length(phrases)), re.IGNORECASE)


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
        acute = item.get("acute_only", False)
        if not isinstance(acute, bool):
            raise LabelSetError(_where(source, f"{what} ({phrase[0]!r}): acute_only must be true or false, "
                                                 f"got {acute!r}."))
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
        rules.append(Rule(phrase[0], cat, direction, mw, labels, acute))
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


def _resolve(spec: PathLike, builtin: Sequence[str] = BUILTIN_SETS, what: str = "label set") -> Path:
    if isinstance(spec, str) and spec in builtin:
        return LABELSETS_DIR / f"{spec}.yaml"
    p = Path(spec)
    if p.is_file():
        return p
    if isinstance(spec, str) and os.sep not in spec and not spec.endswith((".yaml", ".yml")):
        raise LabelSetError(f"unknown {what} {spec!r}: use one of {', '.join(builtin)} or the path of a "
                              f"YAML {what} file (see docs/reports.md).")
    raise LabelSetError(f"{what} file {p} not found; pass one of {', '.join(builtin)} or an existing "
                          f"YAML {what} file.")


def _relative(spec: Any, builtin: Sequence[str], path: Path) -> Any:
    """A file named in ``path``'s YAML, relative to ``path``'s folder (built-in names as they are)."""
    if not isinstance(spec, str) or spec in builtin:
        return spec
    looks_like_path = "/" in spec or os.sep in spec or spec.endswith((".yaml", ".yml"))
    return str(path.parent / spec) if looks_like_path and not Path(spec).is_absolute() else spec


def _read_entries(path: Path, keys: set, entries: str, what: str) -> tuple[dict, dict]:
    """A label-set or vocabulary file: its mapping, checked for unknown keys, and its non-empty ``entries``."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise LabelSetError(f"{path}: a {what} is a mapping with '{entries}'; got {type(data).__name__}.")
    unknown = sorted(set(data) - keys)
    if unknown:
        raise LabelSetError(f"{path}: unknown keys {unknown}; a {what} has {sorted(keys)}.")
    found = data.get(entries)
    if not isinstance(found, dict) or not found:
        raise LabelSetError(f"{path}: '{entries}' must be a non-empty mapping of {entries.rstrip('s')} name -> "
                              "phrases.")
    return data, found


def _extends(data: dict, source: str, path: Path, depth: int, builtin: Sequence[str], what: str) -> Any:
    """The file's ``extends``, resolved (a built-in name or a path next to ``path``), or ``None``."""
    ext = data.get("extends")
    if ext is None:
        return None
    if depth > 4:
        raise LabelSetError(f"{source}: 'extends' chains deeper than 5 files (a loop?).")
    if not isinstance(ext, str):
        raise LabelSetError(f"{source}: 'extends' must name a built-in {what} or a file, got {ext!r}.")
    return _relative(ext, builtin, path)


def _merge_entries(merged: dict[str, dict], entries: dict, source: str, kind: str, keys: set) -> None:
    """Add a file's label (or finding) entries to ``merged``: phrases appended, ``replace: true`` replaces."""
    for name, entry in entries.items():
        if not isinstance(name, str) or not name.strip():
            raise LabelSetError(f"{source}: {kind} name {name!r} must be a non-empty string.")
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise LabelSetError(f"{source}: {kind} {name!r} must be a mapping with 'mention' (and optionally "
                                  f"'exclude', 'negative'); got {type(entry).__name__}.")
        bad = sorted(set(entry) - keys)
        if bad:
            raise LabelSetError(f"{source}: {kind} {name!r}: unknown keys {bad}; a {kind} has "
                                  f"{', '.join(sorted(keys))}.")
        cur = merged.get(name) if not entry.get("replace") else None
        new: dict[str, Any] = {}
        for key in ("mention", "exclude", "negative"):
            phr = _phrases(entry.get(key), source, f"{kind} {name!r} {key}")
            old = list(cur.get(key, [])) if cur else []
            old_keys = {" ".join(p.lower().split()) for p in old}
            new[key] = old + [p for p in phr if " ".join(p.lower().split()) not in old_keys]
        if not new["mention"]:
            raise LabelSetError(f"{source}: {kind} {name!r} has no 'mention' phrases; list at least one.")
        if "chronic" in keys:
            chronic = entry.get("chronic", cur.get("chronic", False) if cur else False)
            if not isinstance(chronic, bool):
                raise LabelSetError(f"{source}: {kind} {name!r}: chronic must be true or false, got {chronic!r}.")
            new["chronic"] = chronic
        merged[name] = new


def _raw_set(spec: PathLike, depth: int = 0) -> tuple[dict[str, Any], str]:
    path = _resolve(spec)
    source = str(path)
    data, labels = _read_entries(path, _SET_KEYS, "labels", "label set")
    base: dict[str, Any] = {"labels": {}, "rules": [], "no_finding": NO_FINDING, "no_finding_ignores": [],
                            "normal": NORMAL, "findings": "findings"}
    ext = _extends(data, source, path, depth, BUILTIN_SETS, "set")
    if ext is not None:
        base, _ = _raw_set(ext, depth + 1)
        base = {**base, "labels": {k: dict(v) for k, v in base["labels"].items()}, "rules": list(base["rules"])}
    merged = base["labels"]
    _merge_entries(merged, labels, source, "label", _LABEL_KEYS)
    for key in ("no_finding", "no_finding_ignores", "normal"):
        if key in data:
            base[key] = data[key]
    if "findings" in data:
        base["findings"] = _relative(data["findings"], BUILTIN_VOCABULARIES, path)
    for key, what in (("no_finding", "No Finding"), ("normal", "Normal")):
        col = base[key]
        if col is not None and (not isinstance(col, str) or not col.strip()):
            raise LabelSetError(f"{source}: {key!r} must be a column name or null, got {col!r}.")
        if col in merged:
            raise LabelSetError(f"{source}: {key!r} {col!r} is also a label; {what} is derived from the others, "
                                  "so remove it from 'labels'.")
    if base["normal"] is not None and base["normal"] == base["no_finding"]:
        raise LabelSetError(f"{source}: 'normal' and 'no_finding' are both {base['normal']!r}; give them two "
                              "names (Normal: no abnormality of any kind; No Finding: no label of the set).")
    vocab = base["findings"]
    if vocab is not None and not isinstance(vocab, str):
        raise LabelSetError(f"{source}: 'findings' must name a built-in vocabulary ({', '.join(BUILTIN_VOCABULARIES)}),"
                              f" a YAML vocabulary file, or be null; got {vocab!r}.")
    ign = _phrases(base["no_finding_ignores"], source, "no_finding_ignores")
    missing = [x for x in ign if x not in merged]
    if missing:
        raise LabelSetError(f"{source}: no_finding_ignores {missing} are not labels of the set.")
    base["no_finding_ignores"] = ign
    base["rules"] = list(base["rules"]) + _parse_rules(data.get("rules"), source, list(merged))
    base["name"] = str(data.get("name") or path.stem)
    return base, source


def _raw_vocabulary(spec: PathLike, depth: int = 0) -> tuple[dict[str, dict], str, list[str]]:
    """A vocabulary file's findings (after its ``extends``), where it was read from, and every file read."""
    path = _resolve(spec, BUILTIN_VOCABULARIES, "vocabulary")
    source = str(path)
    data, findings = _read_entries(path, _VOCABULARY_KEYS, "findings", "vocabulary")
    merged: dict[str, dict] = {}
    files = [source]
    ext = _extends(data, source, path, depth, BUILTIN_VOCABULARIES, "vocabulary")
    if ext is not None:
        base, _, read = _raw_vocabulary(ext, depth + 1)
        merged = {k: dict(v) for k, v in base.items()}
        files += read
    _merge_entries(merged, findings, source, "finding", _FINDING_KEYS)
    return merged, source, files


def _compiled(name: str, entry: dict, source: str, kind: str) -> Label:
    lab = Label(name, entry["mention"], entry["exclude"], entry["negative"], entry.get("chronic", False))
    lab.mention_re = _compile(lab.mention, source, f"{kind} {name!r} mention")
    lab.exclude_re = _compile(lab.exclude, source, f"{kind} {name!r} exclude")
    lab.negative_re = _compile(lab.negative, source, f"{kind} {name!r} negative")
    for kind in ("mention", "negative"):
        lab.parts[kind] = [(pat, required_literals(pat)) for pat in by_length(getattr(lab, kind))]
    every = [keys for parts in lab.parts.values() for _, keys in parts]
    if all(keys is not None for keys in every):
        lab.keys = frozenset().union(*every)
    return lab


@lru_cache(maxsize=16)
def _load_cached(key: str, mtime: float) -> LabelSet:
    raw, source = _raw_set(key)
    labels = {name: _compiled(name, entry, source, "label") for name, entry in raw["labels"].items()}
    findings: dict[str, Label] = {}
    vocabulary = ""
    ls_files: tuple[str, ...] = ()
    if raw["findings"] is not None:
        entries, vocabulary, files = _raw_vocabulary(raw["findings"])
        ls_files = tuple(files)
        columns = {str(c).casefold() for c in (*labels, raw["no_finding"], raw["normal"]) if c}
        clash = [n for n in entries if n.casefold() in columns]
        if clash:
            raise LabelSetError(f"{vocabulary}: findings {clash} have the name of a column of the label set "
                                  f"{source} (in any case); rename them (a finding gives no column of its own).")
        findings = {name: _compiled(name, entry, vocabulary, "finding") for name, entry in entries.items()}
    rules = list(_default_rules()) + raw["rules"]
    ls = LabelSet(raw["name"], labels, raw["no_finding"], tuple(raw["no_finding_ignores"]), rules, source,
                  normal=raw["normal"], findings=findings, vocabulary=vocabulary)
    ls.vocabulary_files = ls_files
    ls.vocabulary_mtime = tuple(_mtime(f) for f in ls_files)
    ls.trigger_words, ls.trigger_max, ls.trigger_re = _trigger_index(rules)
    keys = {k for _, lab in ls.entries() for parts in lab.parts.values() for _, ks in parts for k in (ks or ())}
    for k in sorted(keys):
        if len(k) >= 3:
            ls.key_index.setdefault(k[:3], []).append(k)
    ls.short_keys = tuple(sorted(k for k in keys if len(k) < 3))
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
    ls = _load_cached(key, mtime)
    if tuple(_mtime(f) for f in ls.vocabulary_files) != ls.vocabulary_mtime:  # an edited vocabulary is reread
        _load_cached.cache_clear()
        ls = _load_cached(key, mtime)
    return ls


def _mtime(path: PathLike) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0
