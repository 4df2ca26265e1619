"""The guidance source protocol: what the loop asks of a source, and the registry of sources by name.

A guidance *source* turns something known about each training image -- the radiomics inside
its heatmap masks, its radiology report -- into what a guided round trains with. The loop
(:func:`chexradi.iterate`) names no source: it iterates over the configured ones
(``guidance={"sources": [...]}``), and each answers through this protocol:

``name``
    the registry name, also the name of the source's settings group (``radiomics={...}``)
    and its key in the History (``record["sources"][name]``);
``defaults`` / ``check_settings(settings)``
    the source's settings group: defaults, and a check run before any work;
``needs_masks``
    True when the source measures something inside masks (radiomics): it guides from round 1,
    on the masks the previous round made (or an arm's, :mod:`chexradi.loop.arms`); False for a
    source that needs none (report text), which can guide from round 0;
``static``
    True when the source gives the same data every round (report text), False when it is
    recomputed from each round's masks;
``setup(ctx)``
    once per run, before the first round (rank 0 of a distributed run): files the source
    keeps in the run folder (e.g. the radiomics images);
``start(settings)`` / ``close()``
    resources kept across rounds (e.g. radiomics worker processes); ``start`` may be called
    any number of times;
``prepare(ctx) -> Prepared``
    the round's data for every split (read from the run folder when already there: resume),
    with what the History records about it;
``wrap(dataset, prepared, split)``
    the split's dataset whose items carry the source's batch keys;
``collate(prepared) -> {key: function}`` (optional)
    how the source's keys reach a batch: each function takes the list of the items' values of
    its key and returns the batch's (e.g. token sequences of different lengths padded into one
    tensor); keys no source names are batched by torch's default collation, and a source
    without the method (radiomics: fixed-length vectors) names none (:func:`batch_collate`);
``module(...)``
    the source's objective module (heads, terms, head logits) for
    :class:`~chexradi.guidance.objective.GuidedObjective`.

:func:`register_source` adds a source class; :func:`get_source` builds one by name; a source
written outside chexradi plugs in by registering itself (no change to the loop).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, runtime_checkable

__all__ = ["GuidanceSource", "RoundContext", "Prepared", "register_source", "get_source", "list_sources",
           "source_defaults", "DEFAULT_SOURCES", "KeyCollate", "batch_collate"]

#: The sources a guided round trains with when the settings name none.
DEFAULT_SOURCES: tuple[str, ...] = ("radiomics",)


@dataclass
class RoundContext:
    """What a source sees of the round it prepares.

    Attributes
    ----------
    k : int
        The round.
    parts : mapping
        Split -> dataset (``train``, ``val``, ``test``).
    class_names : list of str
    run_dir, round_dir : pathlib.Path
        The run folder and this round's folder (the source writes under ``round_dir / name``).
    seed : int
        The run's seed.
    settings : mapping
        The source's resolved settings group.
    dist : Dist
        The run's process group (:mod:`chexradi.train.distributed`); ``shards`` each split's range
        of image indices for this rank.
    shards : mapping
    mask_rows : callable or None
        For a source that needs masks: returns, one at a time, the rows of the masks this round
        measures in (``split``, ``index``, ``class``, ``empty``, ``mask_file``), this rank's shard.
    progress : bool or None
    say : callable
        Prints a per-round message.
    train : mapping
        The round's training settings (``epochs``, ``batch_size``...: e.g. the length of a schedule).
    """

    k: int
    parts: Mapping[str, Any]
    class_names: list[str]
    run_dir: Path
    round_dir: Path
    seed: int
    settings: Mapping[str, Any]
    dist: Any
    shards: Mapping[str, range] = field(default_factory=dict)
    mask_rows: Optional[Callable[[], Iterable[Mapping[str, Any]]]] = None
    progress: Optional[bool] = None
    #: Prints a per-round message (documented in the class docstring; autodoc would show ``print``'s here).
    #:
    #: :meta private:
    say: Callable[[str], None] = print
    train: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    """A source's data for one round: ``data`` (split -> what ``GuidanceSource.wrap`` needs), ``record``
    (counts the History keeps under ``record["sources"][name]``) and ``seconds``."""

    data: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@runtime_checkable
class GuidanceSource(Protocol):
    """See the module docstring."""

    name: str
    needs_masks: bool
    static: bool
    defaults: Mapping[str, Any]

    def check_settings(self, settings: Mapping[str, Any]) -> None: ...

    def setup(self, ctx: RoundContext) -> None: ...

    def start(self, settings: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...

    def prepare(self, ctx: RoundContext) -> Prepared: ...

    def wrap(self, dataset: Any, prepared: Prepared, split: str) -> Any: ...

    def module(self, prepared: Prepared, *, num_features: int, num_classes: int, guidance: Mapping[str, Any],
               pos_weight: Any) -> Any: ...


@dataclass
class KeyCollate:
    """A batch of dict items: the keys in ``by_key`` batched by their function, every other key by torch's
    default collation (what a DataLoader does to a list of dicts)."""

    by_key: dict[str, Callable[[list[Any]], Any]]

    def __call__(self, items: list[Any]) -> dict[str, Any]:
        from torch.utils.data import default_collate

        if not items or not all(isinstance(it, Mapping) for it in items):
            raise ValueError("guidance batches are made of dict items (the sources' wrapped datasets); got "
                             f"{type(items[0]).__name__ if items else 'no items'}")
        batch: dict[str, Any] = {}
        for key in items[0]:
            missing = [i for i, it in enumerate(items) if key not in it]
            if missing:
                raise ValueError(f"item key {key!r} is in the batch's first item but not in item(s) {missing[:5]}; "
                                 f"every item of a guided dataset must carry the same keys")
            values = [it[key] for it in items]
            fn = self.by_key.get(key)
            batch[key] = fn(values) if fn is not None else default_collate(values)
        return batch


def batch_collate(sources: Iterable[tuple[Any, "Prepared"]]) -> Optional[KeyCollate]:
    """The collate function of a round whose items carry the keys of ``sources`` (``(source, prepared)``
    pairs): None when no source names a key of its own (torch's default collation then).

    Raises
    ------
    ValueError
        Two sources naming the same key, or a source's ``collate`` that is not a mapping of key -> callable.
    """
    by_key: dict[str, Callable[[list[Any]], Any]] = {}
    owner: dict[str, str] = {}
    for src, prepared in sources:
        fn = getattr(src, "collate", None)
        if fn is None:
            continue
        fns = fn(prepared)
        if not isinstance(fns, Mapping) or not all(isinstance(k, str) and callable(f) for k, f in fns.items()):
            raise ValueError(f"guidance source {src.name!r}: collate(prepared) must return a dict of item key -> "
                             f"function of the list of values, got {fns!r}")
        for key, f in fns.items():
            if key in owner:
                raise ValueError(f"guidance sources {owner[key]!r} and {src.name!r} both collate the item key "
                                 f"{key!r}; give each source's keys their own names")
            owner[key] = src.name
            by_key[key] = f
    return KeyCollate(by_key) if by_key else None


_REGISTRY: dict[str, Callable[[], GuidanceSource]] = {}


def register_source(name: str, factory: Callable[[], GuidanceSource], *, replace: bool = False) -> None:
    """Register a source class (or any factory of sources) under ``name``.

    Raises
    ------
    ValueError
        ``name`` is taken (pass ``replace=True`` to replace it), or is a settings group of the loop.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a source name must be an identifier (it names a settings group), got {name!r}")
    if name in ("train", "heatmap", "guidance"):
        raise ValueError(f"{name!r} is a settings group of the loop; give the source another name")
    if name in _REGISTRY and not replace:
        raise ValueError(f"a guidance source named {name!r} is already registered; pass replace=True to replace it")
    _REGISTRY[name] = factory


def list_sources() -> list[str]:
    """The registered source names."""
    _builtin()
    return sorted(_REGISTRY)


def get_source(name: str) -> GuidanceSource:
    """A new source by name.

    Raises
    ------
    ValueError
        An unknown name (the message lists the registered ones).
    """
    _builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown guidance source {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()


def source_defaults(name: str) -> dict[str, Any]:
    """A copy of the default settings group of source ``name``."""
    import copy

    return copy.deepcopy(dict(get_source(name).defaults))


def _builtin() -> None:
    """Register chexradi's own sources (imported late: the radiomics source needs the engine)."""
    if "radiomics" not in _REGISTRY:
        from .radiomics import RadiomicsSource

        _REGISTRY.setdefault("radiomics", RadiomicsSource)
    if "tandem" not in _REGISTRY or "vkd" not in _REGISTRY:
        from .text import TandemSource, VKDSource

        _REGISTRY.setdefault("tandem", TandemSource)
        _REGISTRY.setdefault("vkd", VKDSource)
