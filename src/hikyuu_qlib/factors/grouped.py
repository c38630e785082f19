"""Compiled kernels over frames sorted by (code, datetime): one pass, parallel across codes.

A frame holding many codes is processed as contiguous groups; ``group_starts`` finds the group
boundaries once, and each kernel runs group by group (in parallel with numba's ``prange``) so that no
window ever crosses from one code into the next.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
from numba import njit, prange

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.stringviews import INLINE_MAX, inline_views

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def group_starts(codes: pl.Series) -> I64:
    """Start offsets of each run of equal codes, plus the total length as the last element."""
    n = codes.len()
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    views = inline_views(codes)
    if views is not None:
        changed = _view_changes(views)
        if changed is not None:
            return np.append(np.flatnonzero(changed), n).astype(np.int64)
    changed_s = (codes != codes.shift(1)).fill_null(True)
    starts = np.flatnonzero(changed_s.to_numpy())
    return np.append(starts, n).astype(np.int64)


@njit(parallel=True, nogil=True, cache=True)
def _view_flags(views: npt.NDArray[np.uint64], out: npt.NDArray[np.bool_]) -> bool:  # pragma: no cover
    n = views.shape[0]
    blocks = 64
    ok = np.ones(blocks, dtype=np.bool_)
    for b in prange(blocks):
        lo = b * n // blocks
        hi = (b + 1) * n // blocks
        for i in range(lo, hi):
            if (views[i, 0] & np.uint64(0xFFFFFFFF)) > INLINE_MAX:  # not inline: views do not decide equality
                ok[b] = False
                break
            if i == 0:
                out[i] = True
            else:
                out[i] = views[i, 0] != views[i - 1, 0] or views[i, 1] != views[i - 1, 1]
    return bool(ok.all())


def _view_changes(views: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_] | None:
    """Where a run of equal (inline) strings starts; ``None`` when some string is not inline."""
    out = np.empty(views.shape[0], dtype=np.bool_)
    return out if _view_flags(views, out) else None


@njit(parallel=True, nogil=True, cache=True)
def _rolling_mean(x: F64, starts: I64, n: int, out: F64) -> None:  # pragma: no cover - compiled
    for g in prange(len(starts) - 1):
        s = starts[g]
        e = starts[g + 1]
        acc = 0.0
        nans = 0
        for i in range(s, e):
            v = x[i]
            if np.isnan(v):
                nans += 1
            else:
                acc += v
            if i - s >= n:
                old = x[i - n]
                if np.isnan(old):
                    nans -= 1
                else:
                    acc -= old
            if i - s >= n - 1 and nans == 0:
                out[i] = acc / n
            else:
                out[i] = np.nan


def grouped_rolling_mean(
    frame: pl.DataFrame, column: str, n: int, *, by: str = "code", starts: I64 | None = None
) -> pl.Series:
    """``n``-bar moving average of ``column`` within each code (NaN until ``n`` bars, or over a gap).

    ``frame`` must be sorted by (``by``, datetime), as every bars frame is. ``starts`` (from
    :func:`group_starts`) can be passed when several indicators run over the same frame, so the group
    boundaries are found once.
    """
    if n < 1:
        raise InvalidInputError(f"window must be >= 1, got {n}")
    values = frame[column].cast(pl.Float64).to_numpy()
    if starts is None:
        starts = group_starts(frame[by])
    # allocated by numpy, not in the kernel: numpy asks the kernel for huge pages on large arrays, which
    # makes first touching 130 MB several times cheaper than numba's own allocation
    out = np.empty(values.shape[0], dtype=np.float64)
    _rolling_mean(np.ascontiguousarray(values), starts, n, out)
    return pl.Series(f"{column}_ma{n}", out)
