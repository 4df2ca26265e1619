"""Decoding a report word by word: greedy and beam search over any step function, batched.

Both searches drive a *step function*, so they serve the report generator and any other
decoder (a hand-built toy table in the tests):

``step(tokens, state) -> (log_probs, state)``
    ``tokens`` ``(N,)`` long, the last token of each of the N running sequences; ``state`` a
    tuple of tensors whose first dimension is N (the decoder's hidden state and whatever it
    attends to); returns ``(N, V)`` log-probabilities of the next token and the new state.

A sequence starts with ``bos_id`` and ends at its first ``eos_id`` or after ``max_length``
generated tokens. What is returned are the generated ids without ``<bos>`` and ``<eos>``.

**Beam search** (:func:`beam_search`) keeps ``beam_size`` running hypotheses per item; at each
step every hypothesis is extended by every token, the ``2 * beam_size`` best extensions are
read in order of score, an extension by ``<eos>`` that ranks among the first ``beam_size``
finishes a hypothesis, the others refill the beam. An item is done when its best finished
hypothesis scores at least what any running one could still reach (a running hypothesis only
loses log-probability as it grows; its normalised score is bounded with the length
normalisation of ``max_length``); at ``max_length`` the running hypotheses are finished as
they are. The hypothesis returned has the highest

    ``score = log P(y) / ((5 + |y|) / 6) ** length_penalty``

(GNMT's length normalisation, Wu et al. 2016; ``|y|`` counts the generated tokens with
``<eos>``; ``length_penalty=0`` ranks by the plain log-probability, > 0 favours longer reports).
``block_trigrams`` forbids any token that would repeat a trigram already in the hypothesis
(Paulus et al., 2018), a common fix for the repeated sentences report generators produce; it
applies to greedy decoding too. With ``beam_size=1`` and no length penalty beam search is greedy
decoding: the same tokens, which the tests check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

__all__ = ["StepFn", "Decoded", "greedy_decode", "beam_search", "length_normalised", "check_decoding"]

StepFn = Callable[[Tensor, tuple], tuple[Tensor, tuple]]
_NEG = float("-inf")


@dataclass
class Decoded:
    """What a search returns: per item the generated ids (no ``<bos>`` / ``<eos>``), the sequence's total
    log-probability, its length-normalised score, and whether it ended with ``<eos>`` (else at ``max_length``)."""

    ids: list[list[int]]
    log_prob: list[float]
    score: list[float]
    finished: list[bool]


def length_normalised(log_prob: float, length: int, length_penalty: float) -> float:
    """GNMT's ``log_prob / ((5 + length) / 6) ** length_penalty``."""
    return float(log_prob) / (((5.0 + length) / 6.0) ** float(length_penalty))


def check_decoding(*, beam_size: int = 1, max_length: int = 60, length_penalty: float = 0.0) -> None:
    """Refuse bad decoding settings, naming the argument.

    Raises
    ------
    ValueError
        ``beam_size`` or ``max_length`` not an integer >= 1; ``length_penalty`` not a finite number.
    """
    for name, v in (("beam_size", beam_size), ("max_length", max_length)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    try:
        lp = float(length_penalty)
    except (TypeError, ValueError):
        raise ValueError(f"length_penalty must be a number (0: none; GNMT's alpha, e.g. 0.6), "
                         f"got {length_penalty!r}") from None
    if lp != lp or lp in (float("inf"), float("-inf")):
        raise ValueError(f"length_penalty must be finite, got {length_penalty!r}")


def _reorder(state: tuple, index: Tensor) -> tuple:
    return tuple(s.index_select(0, index) if isinstance(s, Tensor) else _reorder(s, index) for s in state)


def _expand(state: tuple, k: int) -> tuple:
    return tuple(s.repeat_interleave(k, dim=0) if isinstance(s, Tensor) else _expand(s, k) for s in state)


def _block(log_probs: Tensor, histories: Sequence[Sequence[int]]) -> Tensor:
    """Set to -inf every token that would repeat a trigram of its history (rows = histories)."""
    rows, cols = [], []
    for r, h in enumerate(histories):
        if len(h) < 3:
            continue
        last = (h[-2], h[-1])
        for i in range(len(h) - 2):
            if (h[i], h[i + 1]) == last:
                rows.append(r)
                cols.append(h[i + 2])
    if rows:
        log_probs = log_probs.clone()
        log_probs[torch.tensor(rows, device=log_probs.device), torch.tensor(cols, device=log_probs.device)] = _NEG
    return log_probs


def _next(step: StepFn, tokens: Tensor, state: tuple, hist: Optional[Sequence[Sequence[int]]],
          dtype: torch.dtype) -> tuple[Tensor, tuple]:
    """One step: the next-token log-probabilities in ``dtype``, repeated trigrams of ``hist`` blocked when given."""
    lp, state = step(tokens, state)
    lp = lp.to(dtype)
    return (lp if hist is None else _block(lp, hist)), state


@torch.no_grad()
def greedy_decode(step: StepFn, state: tuple, batch_size: int, *, bos_id: int, eos_id: int,
                  max_length: int = 60, block_trigrams: bool = False, device: torch.device | str = "cpu") -> Decoded:
    """The most probable next token at every step, for ``batch_size`` items at once (see the module docstring)."""
    check_decoding(max_length=max_length)
    tokens = torch.full((batch_size,), int(bos_id), dtype=torch.long, device=device)
    hist: list[list[int]] = [[int(bos_id)] for _ in range(batch_size)]
    out: list[list[int]] = [[] for _ in range(batch_size)]
    logp = [0.0] * batch_size
    done = [False] * batch_size
    for _ in range(max_length):
        lp, state = _next(step, tokens, state, hist if block_trigrams else None, torch.float32)
        best = lp.argmax(dim=1)
        picked = lp.gather(1, best[:, None]).squeeze(1).tolist()
        best_l = best.tolist()
        for b in range(batch_size):
            if done[b]:
                continue
            logp[b] += picked[b]
            hist[b].append(best_l[b])
            if best_l[b] == eos_id:
                done[b] = True
            else:
                out[b].append(best_l[b])
        if all(done):
            break
        tokens = best
    lengths = [len(o) + int(d) for o, d in zip(out, done)]
    return Decoded(ids=out, log_prob=logp, score=[length_normalised(p, n, 0.0) for p, n in zip(logp, lengths)],
                   finished=list(done))


@torch.no_grad()
def beam_search(step: StepFn, state: tuple, batch_size: int, *, bos_id: int, eos_id: int, beam_size: int = 3,
                max_length: int = 60, length_penalty: float = 0.0, block_trigrams: bool = False,
                device: torch.device | str = "cpu") -> Decoded:
    """Beam search for ``batch_size`` items at once (see the module docstring).

    ``state`` holds one row per item; it is expanded to ``batch_size * beam_size`` rows here.
    """
    check_decoding(beam_size=beam_size, max_length=max_length, length_penalty=length_penalty)
    k = int(beam_size)
    n = batch_size * k
    state = _expand(state, k)
    tokens = torch.full((n,), int(bos_id), dtype=torch.long, device=device)
    scores = torch.full((batch_size, k), _NEG, dtype=torch.float64, device=device)
    scores[:, 0] = 0.0  # the first step extends one hypothesis, not k copies of it
    hist: list[list[int]] = [[int(bos_id)] for _ in range(n)]
    finished: list[list[tuple[float, float, list[int], bool]]] = [[] for _ in range(batch_size)]
    done = [False] * batch_size
    for _ in range(max_length):
        lp, state = _next(step, tokens, state, hist if block_trigrams else None, torch.float64)
        vocab = lp.shape[1]
        cand = (scores.view(n, 1) + lp).view(batch_size, k * vocab)
        top_s, top_i = cand.topk(min(2 * k, k * vocab), dim=1)
        top_s_l, top_i_l = top_s.tolist(), top_i.tolist()
        new_rows: list[int] = []
        new_tok: list[int] = []
        new_scores = torch.full((batch_size, k), _NEG, dtype=torch.float64, device=device)
        new_hist: list[list[int]] = []
        for b in range(batch_size):
            kept = 0
            if not done[b]:
                for rank, (s, idx) in enumerate(zip(top_s_l[b], top_i_l[b])):
                    if s == _NEG:
                        break
                    src, tok = divmod(idx, vocab)
                    row = b * k + src
                    if tok == eos_id:
                        if rank < k:
                            words = hist[row][1:]
                            finished[b].append((length_normalised(s, len(words) + 1, length_penalty), s, words, True))
                        continue
                    new_rows.append(row)
                    new_tok.append(tok)
                    new_scores[b, kept] = s
                    new_hist.append(hist[row] + [tok])
                    kept += 1
                    if kept == k:
                        break
                if finished[b]:
                    best = max(f[0] for f in finished[b])
                    alive = new_scores[b, :kept].max().item() if kept else _NEG
                    # the best any running hypothesis can still reach: its log-probability only falls, and
                    # the length normalisation is largest at max_length (alpha >= 0) or at the next step
                    reach = (alive if alive == _NEG else
                             length_normalised(alive, max_length if length_penalty >= 0 else len(hist[b * k]),
                                               length_penalty))
                    if best >= reach:
                        done[b] = True
            # fill the rest of the item's rows with dead hypotheses (score -inf), keeping shapes fixed
            while kept < k:
                new_rows.append(b * k)
                new_tok.append(int(eos_id))
                new_hist.append(list(hist[b * k]))
                kept += 1
            if done[b]:
                new_scores[b, :] = _NEG
        scores = new_scores
        if all(done):
            break
        # rows are appended item by item, so the kept hypotheses of item b are rows b*k .. b*k+k-1 again
        index = torch.tensor(new_rows, dtype=torch.long, device=device)
        state = _reorder(state, index)
        tokens = torch.tensor(new_tok, dtype=torch.long, device=device)
        hist = new_hist
    # items still running at max_length: their running hypotheses finish as they are
    sc = scores.tolist()
    for b in range(batch_size):
        if done[b]:
            continue
        for j in range(k):
            s = sc[b][j]
            if s == _NEG:
                continue
            words = hist[b * k + j][1:]
            finished[b].append((length_normalised(s, len(words), length_penalty), s, words, False))
    ids, logp, norm, ended = [], [], [], []
    for b in range(batch_size):
        if not finished[b]:  # every extension was blocked: nothing to return
            ids.append([])
            logp.append(_NEG)
            norm.append(_NEG)
            ended.append(False)
            continue
        best = max(finished[b], key=lambda f: f[0])
        ids.append(list(best[2]))
        logp.append(float(best[1]))
        norm.append(float(best[0]))
        ended.append(bool(best[3]))
    return Decoded(ids=ids, log_prob=logp, score=norm, finished=ended)
