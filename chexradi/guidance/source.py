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
           "source_defaults", "DEFAULT_SOURCES"]

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
    say: Callable[[str], None] = print


@dataclass
class Prepared:
    """A source's data for one round: ``data`` (split -> what :meth:`GuidanceSource.wrap` needs), ``record``
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
