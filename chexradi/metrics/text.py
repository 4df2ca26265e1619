"""Report-generation text metrics as the papers compute them: BLEU-1..4, METEOR, ROUGE-L, CIDEr.

The figures the report-generation papers print for IU X-ray and MIMIC-CXR (R2Gen, Chen et al.,
EMNLP 2020, and those that copy its evaluation) come from R2Gen's ``compute_scores``: the
scorers of ``pycocoevalcap`` (the MS-COCO caption evaluation) called directly on texts that are
already cleaned and whitespace-tokenised (:func:`chexradi.reports.tokenizer.clean_report`), one
reference per study, ``gts = {i: [reference]}``, ``res = {i: [hypothesis]}``, without COCO's
PTB tokenizer. :func:`text_scores` does exactly that:

- ``BLEU_1`` .. ``BLEU_4``: ``Bleu(4)``, *corpus-level* BLEU (the n-gram matches and lengths of
  every study summed before the geometric mean; Papineni et al., 2002) with the "closest"
  reference length in the brevity penalty. pycocoevalcap adds ``tiny = 1e-15`` to every match
  count and ``small = 1e-9`` to every n-gram count, so a hypothesis identical to its reference
  scores ``1 - O(1e-10)``, not 1, and a corpus without a single matching 4-gram scores a
  BLEU-4 of about 1e-4 (the fourth root of 1e-15 times the other precisions), not 0.
- ``METEOR``: ``Meteor()``, METEOR 1.5 (Denkowski & Lavie, 2014; ``-l en -norm``), the Java
  program shipped with pycocoevalcap: the corpus score from the summed statistics of every
  study (not the mean of the studies' scores). It needs ``java`` on ``PATH``; without one the
  value is ``None`` and :attr:`TextScores.unavailable` says why (never 0, never dropped).
- ``ROUGE_L``: ``Rouge()``, the mean over studies of the LCS-based F-measure with
  ``beta = 1.2`` (Lin, 2004).
- ``CIDEr``: ``Cider()``, which is CIDEr-D (Vedantam et al., CVPR 2015): TF-IDF weighted 1- to
  4-gram vectors, the document frequency counted over the corpus's *references*, clipped
  hypothesis weights, a Gaussian length penalty with ``sigma = 6`` (on the difference in the
  number of *bigrams*, as pycocoevalcap counts length), the mean over n of the cosines, times
  10; the corpus score is the mean over studies. The IDF needs a corpus: on a single study
  every n-gram has document frequency 1 = N, so its CIDEr is 0.

Texts are compared as whitespace-separated words: each text's whitespace is collapsed to single
spaces (a no-op on cleaned text; it keeps ROUGE-L, which splits on ``" "``, from counting empty
tokens and METEOR's line protocol from breaking on a newline), and ``|||``, METEOR's field
separator, is removed from the references as pycocoevalcap removes it from the hypotheses.

An empty hypothesis (a model may emit nothing) is legal and counted
(:attr:`TextScores.empty_hypotheses`): it is scored as the empty string, which each scorer
handles: BLEU counts no n-grams for it but its reference's length (brevity penalty); ROUGE-L
and CIDEr give it 0; METEOR 1.5's jar answers an empty line with all-zero statistics (checked:
it neither hangs nor fails, so no placeholder word is substituted). An empty reference cannot
be scored and is refused by study.

:func:`paired_text_bootstrap` compares two systems on the same studies with a paired bootstrap
of the corpus-level scores.

This module imports numpy (and pycocoevalcap when scoring); never torch.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from ..about import install_hint

__all__ = ["require_pycocoevalcap", "TEXT_METRICS", "BOOTSTRAP_METRICS", "INSTALL_HINT", "JAVA_HINT", "TextScores", "TextDifference",
           "java_status", "text_scores", "check_text_pairs", "paired_text_bootstrap"]

TEXT_METRICS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")
"""The seven scores, in the order the papers print them."""
BOOTSTRAP_METRICS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "ROUGE_L", "CIDEr")
"""The scores :func:`paired_text_bootstrap` resamples (METEOR is too slow per resample)."""
INSTALL_HINT = install_hint("reportgen")
JAVA_HINT = ("install a Java runtime (e.g. `apt-get install default-jre-headless`) or put the bin folder of "
             "an existing one on PATH (e.g. PATH=$JAVA_HOME/bin:$PATH)")
#: Seconds METEOR's Java process may take per call before it is killed: this, plus 1 s per 10 studies.
METEOR_TIMEOUT_S = 300.0

_JAVA_STATUS: dict[str, Optional[str]] = {}


# ------------------------------------------------------------------------------------------------
# Java (METEOR)
# ------------------------------------------------------------------------------------------------
def java_status() -> Optional[str]:
    """``None`` when a working ``java`` is on ``PATH`` (what METEOR's scorer runs), else why not and how to fix it.

    ``java -version`` runs once per ``java`` executable found on ``PATH`` and the answer is cached;
    a change of ``PATH`` is seen at the next call.

    Returns
    -------
    str or None
        The reason METEOR cannot run, with an install hint; ``None`` when it can.
    """
    exe = shutil.which("java")
    if exe is None:
        return f"no `java` on PATH (METEOR 1.5 is a Java program); {JAVA_HINT}"
    if exe not in _JAVA_STATUS:
        try:
            r = subprocess.run([exe, "-version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            reason: Optional[str] = f"`{exe} -version` could not run ({exc}); {JAVA_HINT}"
        else:
            if r.returncode == 0:
                reason = None
            else:
                tail = " ".join(r.stderr.decode(errors="replace").split())[-300:]
                reason = (f"`{exe} -version` failed with exit status {r.returncode}"
                          f"{': ' + tail if tail else ''}; {JAVA_HINT}")
        _JAVA_STATUS[exe] = reason
    return _JAVA_STATUS[exe]


def _coco() -> Any:
    """pycocoevalcap's scorer modules, or an ImportError that says how to install them."""
    try:
        from pycocoevalcap.bleu import bleu, bleu_scorer
        from pycocoevalcap.cider import cider, cider_scorer
        from pycocoevalcap.rouge import rouge
    except ImportError as exc:
        raise ImportError(f"the report-generation text metrics need pycocoevalcap ({exc}); install it with "
                          f"{INSTALL_HINT}") from None

    class _Mods:
        Bleu = bleu.Bleu
        Rouge = rouge.Rouge
        Cider = cider.Cider
        bleu_cook_refs = bleu_scorer.cook_refs
        bleu_cook_test = bleu_scorer.cook_test
        cider_precook = cider_scorer.precook

    return _Mods


def require_pycocoevalcap() -> None:
    """Raise the ImportError with the install hint now when pycocoevalcap is missing (a caller that will score
    text later, such as a training run selecting on BLEU, checks before it starts)."""
    _coco()


# ------------------------------------------------------------------------------------------------
# input
# ------------------------------------------------------------------------------------------------
def _words(text: Any, what: str, i: int) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{what} {i} must be a string, got {type(text).__name__}; give report texts "
                         f"(an empty string for a hypothesis the model left empty)")
    return " ".join(text.split())


def _named(ids: Sequence[str], bad: Sequence[int]) -> str:
    shown = ", ".join(ids[i] for i in bad[:5])
    return shown + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")


def check_text_pairs(references: Sequence[str], hypotheses: Sequence[str], *,
                     ids: Optional[Sequence[Any]] = None) -> tuple[list[str], list[str], list[str], list[int]]:
    """The checks every text score makes: one hypothesis per reference, no empty reference.

    Parameters
    ----------
    references, hypotheses:
        One text per study, in the same order.
    ids:
        The studies' ids, for the messages (default: their indices).

    Returns
    -------
    tuple
        ``(references, hypotheses, ids, empty)``: the texts with whitespace collapsed, the ids as
        strings, and the indices of the empty hypotheses.

    Raises
    ------
    ValueError
        Lengths that differ (both counts named), no study, a text that is not a string, or a
        reference without words (the studies named, at most five, with the count).
    """
    refs = list(references) if not isinstance(references, str) else None
    hyps = list(hypotheses) if not isinstance(hypotheses, str) else None
    if refs is None or hyps is None:
        raise ValueError("references and hypotheses must be sequences of texts, one per study, not a single "
                         "string; wrap one report in a list")
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} reference(s) but {len(hyps)} hypothesis/hypotheses: give one generated "
                         f"report per reference, in the same order")
    if not refs:
        raise ValueError("no studies to score: references and hypotheses are empty")
    if ids is None:
        names = [str(i) for i in range(len(refs))]
    else:
        names = [str(x) for x in ids]
        if len(names) != len(refs):
            raise ValueError(f"ids has {len(names)} entries but there are {len(refs)} studies: give one id per "
                             f"study (or none)")
    refs = [_words(t, "reference", i) for i, t in enumerate(refs)]
    hyps = [_words(t, "hypothesis", i) for i, t in enumerate(hyps)]
    bad = [i for i, t in enumerate(refs) if not t]
    if bad:
        raise ValueError(f"{len(bad)} reference report(s) have no words (study {_named(names, bad)}); a study "
                         f"cannot be scored without its reference: drop those studies or give their reference "
                         f"text")
    return refs, hyps, names, [i for i, t in enumerate(hyps) if not t]


# ------------------------------------------------------------------------------------------------
# scores
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextScores:
    """The seven text scores of a set of generated reports.

    Attributes
    ----------
    scores : dict
        ``metric -> float`` in :data:`TEXT_METRICS` order; ``None`` for a metric that was not
        computed (then named in ``unavailable``).
    unavailable : dict
        ``metric -> reason`` for every ``None`` in ``scores`` (METEOR without Java, or
        ``meteor=False``).
    n : int
        Studies scored.
    empty_hypotheses : int
        Generated reports without a word (scored as the empty string).
    """

    scores: dict[str, Optional[float]]
    unavailable: dict[str, str] = field(default_factory=dict)
    n: int = 0
    empty_hypotheses: int = 0

    def __getitem__(self, metric: str) -> Optional[float]:
        return self.scores[metric]

    def row(self) -> dict[str, Optional[float]]:
        """The scores as one flat row (``BLEU_1`` .. ``CIDEr``), ``None`` where unavailable."""
        return {m: self.scores.get(m) for m in TEXT_METRICS}

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: scores, the reasons for missing ones, the counts."""
        return {"scores": self.row(), "unavailable": dict(self.unavailable), "n": self.n,
                "empty_hypotheses": self.empty_hypotheses}


def _stop_meteor(m: Any) -> str:
    """End METEOR's Java process (pycocoevalcap's Meteor has no close); its stderr tail."""
    p = m.meteor_p
    err = ""
    try:
        p.stdin.close()
    except OSError:
        pass
    if p.poll() is None:
        p.kill()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
        pass
    try:
        err = p.stderr.read().decode(errors="replace") if p.returncode is not None else ""
    except (OSError, ValueError):
        pass
    for f in (p.stdout, p.stderr):
        try:
            f.close()
        except OSError:
            pass
    # pycocoevalcap's __del__ takes the lock; a call that failed mid-way left it held.
    if m.lock.locked():
        m.lock.release()
    return " ".join(err.split())[-400:]


def _meteor(gts: dict, res: dict) -> float:
    """Corpus METEOR with one Java process, started here and ended before returning (even on failure)."""
    from pycocoevalcap.meteor.meteor import Meteor

    try:
        m = Meteor()
    except OSError as exc:
        raise RuntimeError(f"METEOR's Java process could not start ({exc}); {JAVA_HINT}, or pass meteor=False")
    timeout = METEOR_TIMEOUT_S + 0.1 * len(gts)
    fired = threading.Event()

    def _kill() -> None:
        fired.set()
        m.meteor_p.kill()

    watchdog = threading.Timer(timeout, _kill)
    watchdog.daemon = True
    watchdog.start()
    failed: Optional[BaseException] = None
    score = float("nan")
    try:
        score, _ = m.compute_score(gts, res)
    except (ValueError, OSError) as exc:  # a dead process: float('') or a broken pipe
        failed = exc
    finally:
        watchdog.cancel()
        err = _stop_meteor(m)
    if failed is not None:
        why = (f"did not answer within {timeout:.0f} s and was killed" if fired.is_set()
               else f"failed ({type(failed).__name__}: {failed})")
        raise RuntimeError(f"METEOR's Java process {why}{'; it said: ' + err if err else ''}. Pass meteor=False "
                           f"to score without METEOR") from failed
    return float(score)


def text_scores(references: Sequence[str], hypotheses: Sequence[str], *, ids: Optional[Sequence[Any]] = None,
                meteor: bool = True) -> TextScores:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr of generated reports, as R2Gen's ``compute_scores`` gives them.

    Parameters
    ----------
    references:
        One reference report per study, already cleaned (:func:`chexradi.reports.tokenizer.clean_report`;
        :func:`chexradi.reportgen.scoring.score_reports` cleans for you).
    hypotheses:
        The generated reports, in the same order; an empty one is legal and counted.
    ids:
        The studies' ids, named in errors (default: indices).
    meteor:
        Compute METEOR (starts one Java process for this call, ended before returning). ``False``
        or no working ``java``: METEOR is ``None`` with the reason in ``unavailable``.

    Returns
    -------
    TextScores

    Raises
    ------
    ValueError
        See :func:`check_text_pairs`.
    ImportError
        pycocoevalcap is not installed (the message says ``pip install "chexradi[reportgen]"``).
    RuntimeError
        METEOR's Java process failed or hung (killed after ``METEOR_TIMEOUT_S`` + 0.1 s per
        study); ``meteor=False`` scores without it.
    """
    refs, hyps, _, empty = check_text_pairs(references, hypotheses, ids=ids)
    coco = _coco()
    gts = {i: [r] for i, r in enumerate(refs)}
    res = {i: [h] for i, h in enumerate(hyps)}
    scores: dict[str, Optional[float]] = {m: None for m in TEXT_METRICS}
    unavailable: dict[str, str] = {}
    bleu, _ = coco.Bleu(4).compute_score(gts, res, verbose=0)
    for k in range(4):
        scores[f"BLEU_{k + 1}"] = float(bleu[k])
    if not meteor:
        unavailable["METEOR"] = "not computed: meteor=False"
    else:
        reason = java_status()
        if reason is not None:
            unavailable["METEOR"] = reason
        else:
            gts_m = {i: [r.replace("|||", "")] for i, r in gts.items()} if any("|||" in r for r in refs) else gts
            scores["METEOR"] = _meteor(gts_m, res)
    scores["ROUGE_L"] = float(coco.Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(coco.Cider().compute_score(gts, res)[0])
    return TextScores(scores=scores, unavailable=unavailable, n=len(refs), empty_hypotheses=len(empty))


# ------------------------------------------------------------------------------------------------
# paired bootstrap
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextDifference:
    """One metric of two systems on the same studies, and the bootstrap of their difference.

    Attributes
    ----------
    metric : str
    a, b : float
        The corpus score of system A and of system B on all studies (what :func:`text_scores` gives).
    difference : float
        ``b - a``.
    ci : tuple of float
        Percentile interval of the resampled differences at ``level``.
    se : float
        Standard deviation of the resampled differences.
    p_value : float
        Two-sided, add-one (see :class:`chexradi.metrics.BootstrapResult`).
    n_resamples : int
    level : float
    """

    metric: str
    a: float
    b: float
    difference: float
    ci: tuple[float, float]
    se: float
    p_value: float
    n_resamples: int
    level: float

    def row(self) -> dict[str, Any]:
        """A flat, JSON-able row."""
        return {"metric": self.metric, "a": self.a, "b": self.b, "difference": self.difference,
                "ci_low": self.ci[0], "ci_high": self.ci[1], "se": self.se, "p_value": self.p_value,
                "n_resamples": self.n_resamples, "level": self.level}


class _Corpus:
    """Per-study sufficient statistics of one system's hypotheses against the shared references.

    BLEU: lengths, n-gram counts and clipped matches (pycocoevalcap's ``cook_test``); ROUGE-L: the
    per-study F (pycocoevalcap's ``calc_score``); CIDEr-D: sparse n-gram counts, so that the
    document frequency of any resample can be recomputed in a few vectorised sums.
    """

    def __init__(self, refs: list[str], hyps: list[str], coco: Any, grams: dict, ref_cider: dict) -> None:
        n = len(refs)
        self.bleu = np.zeros((n, 10))  # testlen, reflen, guess 1-4, correct 1-4
        rouge = coco.Rouge()
        self.rouge = np.zeros(n)
        rows, orders, cols, vals, brow, border, bcol, bval = [], [], [], [], [], [], [], []
        self.hyp_bigrams = np.zeros(n)
        for i, (r, h) in enumerate(zip(refs, hyps)):
            cooked = coco.bleu_cook_test(h, coco.bleu_cook_refs([r]), eff="closest")
            self.bleu[i] = [cooked["testlen"], cooked["reflen"], *cooked["guess"], *cooked["correct"]]
            self.rouge[i] = rouge.calc_score([h], [r])
            ref_counts = ref_cider["counts"][i]
            for g, c in coco.cider_precook(h).items():
                gid = grams.setdefault(g, len(grams))
                rows.append(i)
                orders.append(len(g) - 1)
                cols.append(gid)
                vals.append(float(c))
                rc = ref_counts.get(g, 0)
                if rc:
                    brow.append(i)
                    border.append(len(g) - 1)
                    bcol.append(gid)
                    bval.append(min(float(c), float(rc)) * rc)
                if len(g) == 2:
                    self.hyp_bigrams[i] += c
        self.h_slot = np.asarray(rows, np.int64) * 4 + np.asarray(orders, np.int64)
        self.h_col = np.asarray(cols, np.int64)
        self.h_sq = np.asarray(vals) ** 2
        self.m_slot = np.asarray(brow, np.int64) * 4 + np.asarray(border, np.int64)
        self.m_col = np.asarray(bcol, np.int64)
        self.m_val = np.asarray(bval)


def _bleu_from_totals(t: np.ndarray) -> np.ndarray:
    """pycocoevalcap's corpus BLEU-1..4 from summed statistics, one row per resample."""
    small, tiny = 1e-9, 1e-15
    out = np.empty((t.shape[0], 4))
    prod = np.ones(t.shape[0])
    for k in range(4):
        prod = prod * (t[:, 6 + k] + tiny) / (t[:, 2 + k] + small)
        out[:, k] = prod ** (1.0 / (k + 1))
    ratio = (t[:, 0] + tiny) / (t[:, 1] + small)
    with np.errstate(over="ignore", divide="ignore"):
        bp = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return out * bp[:, None]


def _cider_per_study(w2: np.ndarray, sys: _Corpus, ref: dict, n: int, sigma: float = 6.0) -> np.ndarray:
    """pycocoevalcap's CIDEr-D of every study given the squared n-gram weights ``(log N - log df)^2``."""
    nh = np.sqrt(np.bincount(sys.h_slot, weights=sys.h_sq * w2[sys.h_col], minlength=4 * n)).reshape(n, 4)
    nr = np.sqrt(np.bincount(ref["slot"], weights=ref["sq"] * w2[ref["col"]], minlength=4 * n)).reshape(n, 4)
    num = np.bincount(sys.m_slot, weights=sys.m_val * w2[sys.m_col], minlength=4 * n).reshape(n, 4)
    den = nh * nr
    val = np.where(den != 0, num / np.where(den != 0, den, 1.0), num)
    delta = sys.hyp_bigrams - ref["bigrams"]
    pen = np.exp(-(delta ** 2) / (2 * sigma ** 2))
    return 10.0 * (val * pen[:, None]).mean(axis=1)


class _PairedStats:
    """The references' and every system's per-study statistics; :meth:`scores` of any resample."""

    def __init__(self, refs: list[str], systems: Sequence[list[str]], *, cider: bool = True) -> None:
        coco = _coco()
        n = len(refs)
        grams: dict = {}
        ref_counts = [coco.cider_precook(r) for r in refs]
        slot, col, sq, present = [], [], [], []
        bigrams = np.zeros(n)
        for i, counts in enumerate(ref_counts):
            for g, c in counts.items():
                gid = grams.setdefault(g, len(grams))
                slot.append(i * 4 + len(g) - 1)
                col.append(gid)
                sq.append(float(c) ** 2)
                present.append(i)
                if len(g) == 2:
                    bigrams[i] += c
        self.ref = {"counts": ref_counts, "slot": np.asarray(slot, np.int64), "col": np.asarray(col, np.int64),
                    "sq": np.asarray(sq), "present": np.asarray(present, np.int64), "bigrams": bigrams}
        self.systems = [_Corpus(refs, h, coco, grams, self.ref) for h in systems]
        self.n = n
        self.n_grams = len(grams)
        self.cider = cider

    def scores(self, count: np.ndarray) -> np.ndarray:
        """(systems, :data:`BOOTSTRAP_METRICS`) on the corpus where study i appears ``count[i]`` times
        (CIDEr NaN when not asked for)."""
        count = np.asarray(count, np.float64)
        total = float(count.sum())
        out = np.empty((len(self.systems), len(BOOTSTRAP_METRICS)))
        w2 = None
        if self.cider:
            df = np.bincount(self.ref["col"], weights=count[self.ref["present"]], minlength=self.n_grams)
            w = np.log(total) - np.log(np.maximum(1.0, df))
            w2 = w * w
        for s, sys in enumerate(self.systems):
            out[s, :4] = _bleu_from_totals((count @ sys.bleu)[None, :])[0]
            out[s, 4] = count @ sys.rouge / total
            out[s, 5] = (count @ _cider_per_study(w2, sys, self.ref, self.n) / total) if w2 is not None else np.nan
        return out


def paired_text_bootstrap(references: Sequence[str], hyp_a: Sequence[str], hyp_b: Sequence[str], *,
                          metrics: Sequence[str] = ("BLEU_4", "ROUGE_L", "CIDEr"), n_boot: int = 500,
                          seed: int = 0, level: float = 0.95,
                          ids: Optional[Sequence[Any]] = None) -> dict[str, TextDifference]:
    """System B against system A on the same studies: each corpus score, B - A, and its bootstrap interval.

    Studies are resampled with replacement, the same resample for both systems
    (:func:`chexradi.metrics.bootstrap_indices`), and each corpus score is recomputed on the
    resample as pycocoevalcap computes it on a corpus: BLEU from the resample's summed n-gram
    statistics, ROUGE-L as the mean of its studies' scores, CIDEr-D with the document frequency
    counted over the resample's references (a study drawn twice counts twice, as it would in
    pycocoevalcap). The statistics are collected once per study, so a resample costs a few
    vectorised sums; the scores on all studies equal :func:`text_scores`'s (checked in the tests).
    METEOR is not offered: its score comes from the Java program, a few seconds per call, which
    500 resamples cannot afford.

    Timing: ``n_boot=500`` on IU X-ray's 590 test studies (R2Gen's split) takes 1.4 to 2.0 s in one
    process on a shared 2-core machine, for the default three metrics as for all six (CIDEr
    dominates; 3 s while training jobs shared the cores); about 0.6 s of it collects the per-study
    statistics.

    Parameters
    ----------
    references, hyp_a, hyp_b:
        One text per study, in the same order (cleaned, as for :func:`text_scores`).
    metrics:
        Any of :data:`BOOTSTRAP_METRICS`.
    n_boot:
        Resamples (>= 10).
    seed:
        Seed of the resampling.
    level:
        Confidence level of the percentile interval.
    ids:
        Study ids for the messages.

    Returns
    -------
    dict
        ``metric -> TextDifference``.

    Raises
    ------
    ValueError
        Bad texts (see :func:`check_text_pairs`; both systems checked), fewer than 2 studies, an
        unknown metric or METEOR, ``n_boot`` < 10, a level outside (0, 1).
    ImportError
        pycocoevalcap is not installed.
    """
    from .paired import _z, bootstrap_indices, summarize_bootstrap

    _z(level)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10 (500 is usual), got {n_boot!r}")
    wanted = [metrics] if isinstance(metrics, str) else list(metrics)
    if "METEOR" in wanted:
        raise ValueError("METEOR cannot be bootstrapped here (its Java scorer takes seconds per resample); "
                         f"choose among {', '.join(BOOTSTRAP_METRICS)} and report METEOR from text_scores")
    unknown = [m for m in wanted if m not in BOOTSTRAP_METRICS]
    if unknown or not wanted:
        raise ValueError(f"unknown metric(s) {unknown or wanted}: choose among {', '.join(BOOTSTRAP_METRICS)}")
    refs, hyps_a, _, _ = check_text_pairs(references, hyp_a, ids=ids)
    _, hyps_b, _, _ = check_text_pairs(references, hyp_b, ids=ids)
    n = len(refs)
    if n < 2:
        raise ValueError(f"a bootstrap needs at least 2 studies, got {n}")
    stats = _PairedStats(refs, [hyps_a, hyps_b], cider="CIDEr" in wanted)
    scores = stats.scores
    full = scores(np.ones(n))
    reps = np.array([scores(np.bincount(idx, minlength=n).astype(np.float64))
                     for idx in bootstrap_indices(n, n_resamples=n_boot, seed=seed)])
    out: dict[str, TextDifference] = {}
    for m in wanted:
        j = BOOTSTRAP_METRICS.index(m)
        a, b = float(full[0, j]), float(full[1, j])
        r = summarize_bootstrap(b - a, reps[:, 1, j] - reps[:, 0, j], level=level)
        out[m] = TextDifference(metric=m, a=a, b=b, difference=b - a, ci=r.ci, se=r.se, p_value=r.p_value,
                                n_resamples=r.n_resamples, level=r.level)
    return out
