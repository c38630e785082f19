"""TopkDropout's daily choice of sells and buys, with Qlib's exact semantics, as compiled kernels.

On each day, with ``score`` the previous trading day's prediction (NaN for a held stock it does not
score):

1. ``last``: the held stocks; ``today``: the best ``n_drop + topk - len(last)`` scored stocks not held
   (``only_tradable``: the best tradable ones);
2. ``comb``: ``last`` ∪ ``today`` ranked by score (NaN last, in code order);
3. sell: the held stocks among the bottom ``n_drop`` of ``comb`` (``only_tradable``: the bottom tradable
   ones);
4. buy: the first ``len(sell) + topk - len(last)`` of ``today``.

Python list slicing is reproduced as Qlib does it: ``n_drop == 0`` makes "the bottom 0" the whole of
``comb`` (``list[-0:]``), and a negative count slices from the end. With ``only_tradable`` a count
below 1 still takes one stock (Qlib's loop appends before it compares).

Ties between equal scores (a suspended stock's reversal score is 0 day after day) are ordered exactly as
pandas orders them: ``Series.sort_values(ascending=False)`` argsorts the reversed non-NaN values with
numpy's (unstable) quicksort and reverses the result. Without ties a stable compiled sort gives the same
order; with ties the day's ranking calls numpy's argsort on the same array, in code order — the order
of Qlib's sorted ``union`` and of a prediction frame sorted by instrument.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit, objmode

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]


@njit(cache=True)
def head_len(length: int, stop: int) -> int:  # pragma: no cover - compiled
    """``len(xs[:stop])`` for a list of ``length``."""
    if stop >= 0:
        return min(stop, length)
    return max(length + stop, 0)


def pandas_desc_order(values: F64) -> I64:
    """Positions of ``values`` (no NaN) in the order ``pd.Series(values).sort_values(ascending=False)``."""
    positions = np.arange(len(values), dtype=np.int64)[::-1]
    return np.ascontiguousarray(positions[np.argsort(values[::-1], kind="quicksort")][::-1])


@njit(cache=True)
def rank_desc(idx: I64, score: F64) -> I64:  # pragma: no cover - compiled
    """``idx`` (in code order) ranked by ``score`` descending; NaN last, ties and NaNs in code order."""
    n = len(idx)
    valid = np.empty(n, dtype=np.int64)
    nans = np.empty(n, dtype=np.int64)
    nv = 0
    nn = 0
    for k in range(n):
        s = score[idx[k]]
        if np.isnan(s):
            nans[nn] = idx[k]
            nn += 1
        else:
            valid[nv] = idx[k]
            nv += 1
    keys = np.empty(nv)
    for k in range(nv):
        keys[k] = -score[valid[k]]
    order = np.argsort(keys, kind="mergesort")
    tied = False
    for k in range(1, nv):
        if keys[order[k]] == keys[order[k - 1]]:
            tied = True
            break
    if tied:
        values = -keys
        with objmode(order="int64[:]"):
            order = pandas_desc_order(values)
    out = np.empty(n, dtype=np.int64)
    for k in range(nv):
        out[k] = valid[order[k]]
    for k in range(nn):
        out[nv + k] = nans[k]
    return out


@njit(cache=True)
def select(
    held: Bool,
    score: F64,
    present: Bool,
    tradable: Bool,
    topk: int,
    n_drop: int,
    only_tradable: bool,
) -> tuple[Bool, I64]:  # pragma: no cover - compiled
    """``(sell, buy)``: a mask of held stocks to sell, and the stocks to buy in order."""
    n = len(held)
    held_idx = np.flatnonzero(held)
    n_last = len(held_idx)
    cand_mask = present & ~held
    ranked = rank_desc(np.flatnonzero(cand_mask), score)

    want = n_drop + topk - n_last
    if only_tradable:
        limit = max(want, 1)
        today = np.empty(len(ranked), dtype=np.int64)
        nt = 0
        for k in range(len(ranked)):
            if nt >= limit:
                break
            if tradable[ranked[k]]:
                today[nt] = ranked[k]
                nt += 1
        today = today[:nt]
    else:
        today = ranked[: head_len(len(ranked), want)]

    in_comb = held.copy()
    for k in range(len(today)):
        in_comb[today[k]] = True
    comb = rank_desc(np.flatnonzero(in_comb), score)

    sell = np.zeros(n, dtype=np.bool_)
    n_sell = 0
    if only_tradable:
        limit = max(n_drop, 1)
        taken = 0
        for k in range(len(comb) - 1, -1, -1):
            if taken >= limit:
                break
            j = comb[k]
            if tradable[j]:
                taken += 1
                if held[j]:
                    sell[j] = True
                    n_sell += 1
    else:
        start = 0 if n_drop == 0 else max(len(comb) - n_drop, 0)
        for k in range(start, len(comb)):
            j = comb[k]
            if held[j]:
                sell[j] = True
                n_sell += 1
    buy = today[: head_len(len(today), n_sell + topk - n_last)]
    return sell, buy
