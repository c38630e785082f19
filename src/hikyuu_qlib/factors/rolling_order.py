"""Rolling order statistics with Qlib's semantics over one code's rows: extremes, quantiles, rank.

Same conventions as :mod:`hikyuu_qlib.factors.rolling`: rows ``s..e`` of one code, values written
for the live rows (``live[i] >= 0``) into scratch arrays indexed from 0, windows truncated at the
code's first row, missing values (NaN, ±inf) skipped.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hikyuu_qlib.factors.rolling import F32, F64, I64


@njit(nogil=True, cache=True, error_model="numpy")
def extremum(
    x: F32,
    s: int,
    e: int,
    w: int,
    live: I64,
    ahead: I64,
    largest: bool,
    value: F64,
    index: F64,
    queue: I64,
    nans: I64,
) -> None:  # pragma: no cover - compiled
    """The max (or min) of the valid values, and Qlib's 1-based IdxMax (or IdxMin).

    The position is that of NumPy's ``argmax``/``argmin`` on the raw truncated window: the first NaN
    when there is one, the first extreme otherwise; NaN when the window holds no valid value.
    A monotonic queue of candidate rows (``queue``, ``nans``: scratch of the group's length) keeps
    this linear in the number of rows. Rows whose window reaches no live row (``ahead``: distance to
    the next live row) are skipped and the queues restart after them, which is exact: the result
    depends on the window's values only.
    """
    sign = 1.0 if largest else -1.0
    head = 0
    tail = 0
    nan_head = 0
    nan_tail = 0
    for i in range(s, e):
        if ahead[i - s] >= w:
            head = 0
            tail = 0
            nan_head = 0
            nan_tail = 0
            continue
        lo = max(s, i - w + 1)
        v = np.float64(x[i])
        if np.isnan(v):
            nans[nan_tail] = i
            nan_tail += 1
        else:
            while tail > head and sign * x[queue[tail - 1]] < sign * v:
                tail -= 1
            queue[tail] = i
            tail += 1
        while head < tail and queue[head] < lo:
            head += 1
        while nan_head < nan_tail and nans[nan_head] < lo:
            nan_head += 1
        if live[i] < 0:
            continue
        j = i - s
        if head == tail:
            value[j] = np.nan
            index[j] = np.nan
            continue
        value[j] = x[queue[head]]
        first = nans[nan_head] if nan_head < nan_tail else queue[head]
        index[j] = first - lo + 1


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _lower(buf: F64, cnt: int, v: float) -> int:  # pragma: no cover - compiled
    """The first position whose value is not below ``v`` (branch-free halving)."""
    if cnt == 0:
        return 0
    base = 0
    size = cnt
    while size > 1:
        half = size >> 1
        if buf[base + half] < v:
            base += half
        size -= half
    return base + 1 if buf[base] < v else base


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _quantile(buf: F64, cnt: int, q: float) -> float:  # pragma: no cover - compiled
    h = (cnt - 1) * q
    lo = int(np.floor(h))
    hi = min(lo + 1, cnt - 1)
    return float(buf[lo] + (buf[hi] - buf[lo]) * (h - lo))


@njit(nogil=True, cache=True, error_model="numpy")
def quantiles_rank(
    x: F32,
    s: int,
    e: int,
    w: int,
    live: I64,
    ahead: I64,
    buf: F64,
    upper: F64,
    lower: F64,
    rank: F64,
) -> None:  # pragma: no cover - compiled
    """The 0.8 and 0.2 quantiles (linear interpolation) of the valid values, and the last's rank.

    ``buf`` (length ``w``) holds the window's valid values sorted. Each step overwrites the leaving
    value with the arriving one and slides it into place (insertion sort by one), so a step costs
    the distance between their places; the arriving value's place then gives its rank. Rows whose
    window reaches no live row are skipped as in :func:`extremum` (``base``: the first row in ``buf``).
    """
    cnt = 0
    base = s
    for i in range(s, e):
        if ahead[i - s] >= w:
            cnt = 0
            base = i + 1
            continue
        v = np.float64(x[i])
        has_new = np.isfinite(v)
        old = np.float64(x[i - w]) if i - w >= base else np.nan
        if np.isfinite(old):
            p = _lower(buf, cnt, old)
            if not has_new:
                for j in range(p, cnt - 1):
                    buf[j] = buf[j + 1]
                cnt -= 1
        elif has_new:
            p = cnt
            cnt += 1
        else:
            p = -1
        if has_new:
            # buf[p] is free: slide v into place; afterwards values left of p are <= v, right >= v
            while p + 1 < cnt and buf[p + 1] < v:
                buf[p] = buf[p + 1]
                p += 1
            while p > 0 and buf[p - 1] > v:
                buf[p] = buf[p - 1]
                p -= 1
            buf[p] = v
        if live[i] < 0:
            continue
        j = i - s
        if cnt == 0:
            upper[j] = np.nan
            lower[j] = np.nan
        else:
            upper[j] = _quantile(buf, cnt, 0.8)
            lower[j] = _quantile(buf, cnt, 0.2)
        if not has_new:
            rank[j] = np.nan
        else:
            less = p
            while less > 0 and buf[less - 1] == v:
                less -= 1
            more = p + 1
            while more < cnt and buf[more] == v:
                more += 1
            rank[j] = (less + (more - less + 1) / 2.0) / cnt
