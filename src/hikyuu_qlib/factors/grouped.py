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

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def group_starts(codes: pl.Series) -> I64:
    """Start offsets of each run of equal codes, plus the total length as the last element."""
    n = codes.len()
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    changed = (codes != codes.shift(1)).fill_null(True)
    starts = np.flatnonzero(changed.to_numpy())
    return np.append(starts, n).astype(np.int64)


@njit(parallel=True, nogil=True, cache=True)
def _rolling_mean(x: F64, starts: I64, n: int) -> F64:  # pragma: no cover - compiled
    out = np.empty_like(x)
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
    return out


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
    return pl.Series(f"{column}_ma{n}", _rolling_mean(np.ascontiguousarray(values), starts, n))
