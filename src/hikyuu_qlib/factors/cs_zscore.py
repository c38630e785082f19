"""Cross-sectional z-score with pandas' arithmetic, bit for bit: Qlib's ``CSZScoreNorm``.

Qlib computes ``(x - x.mean()) / x.std()`` per date on the handler's frame (rows sorted by datetime,
then instrument). Without bottleneck, pandas (``nanops``) does it in the column's own dtype, so a float32
column stays in float32:

* mean: the NaN-free values summed in the column's dtype (NumPy's pairwise sum), divided by the count
  in that dtype;
* sample variance: a float64 mean (the values summed in float64, divided by the count), the float64
  squared deviations summed (pairwise) and divided by ``count - 1``, the result cast to the column's
  dtype; the std is its square root in that dtype (NaN when fewer than two values);
* ``(x - mean) / std`` in the column's dtype.

:func:`cs_zscore` follows those steps in the same order and with NumPy's pairwise summation, one date
at a time, so a float32 label comes out as Qlib's float32 label.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
from numba import njit

#: NumPy's block size for the pairwise sum (``PW_BLOCKSIZE``): up to it, eight running partial sums.
_BLOCK = 128

Floats = npt.NDArray[np.float32] | npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@njit(nogil=True, cache=True, error_model="numpy")
def _block_sum(a, lo, n):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """NumPy's pairwise sum of ``a[lo:lo + n]`` for ``0 < n <= 128``: eight running partial sums."""
    if n < 8:
        res = a[lo]  # NumPy starts from 0, and 0 + a[lo] is a[lo]
        for i in range(1, n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(nogil=True, cache=True, error_model="numpy")
def _pairwise_sum(a, lo, n):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """``a[lo:lo + n].sum()`` (``n > 0``) in ``a``'s dtype, associated as NumPy's ``pairwise_sum``: above
    128 values, the sum of the two halves (the first a multiple of 8 long). The recursion runs on an
    explicit stack (a node waits for its left half, then for its right half)."""
    if n <= _BLOCK:
        return _block_sum(a, lo, n)
    los = np.empty(64, dtype=np.int64)
    ns = np.empty(64, dtype=np.int64)
    has_left = np.zeros(64, dtype=np.bool_)
    lefts = np.empty(64, dtype=a.dtype)
    top = 0
    los[0], ns[0] = lo, n
    while True:
        if ns[top] > _BLOCK:  # descend into the left half
            half = ns[top] // 2
            half -= half % 8
            has_left[top] = False
            los[top + 1], ns[top + 1] = los[top], half
            top += 1
            continue
        v = _block_sum(a, los[top], ns[top])
        top -= 1
        while top >= 0 and has_left[top]:  # a right half: combine with its left and return upwards
            v = lefts[top] + v
            top -= 1
        if top < 0:
            return v
        lefts[top] = v  # a left half: now the right one
        has_left[top] = True
        half = ns[top] // 2
        half -= half % 8
        los[top + 1], ns[top + 1] = los[top] + half, ns[top] - half
        has_left[top + 1] = False
        top += 1


@njit(nogil=True, cache=True, error_model="numpy")
def _cs_zscore(x, starts, out):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Per group ``[starts[g], starts[g + 1])`` of ``x``: pandas' ``(x - mean) / std`` into ``out``."""
    one = np.empty(3, dtype=x.dtype)  # scalars of x's dtype: [count, mean, std]
    for g in range(starts.shape[0] - 1):
        lo, hi = starts[g], starts[g + 1]
        n = hi - lo
        same = np.zeros(n, dtype=x.dtype)
        wide = np.zeros(n, dtype=np.float64)
        valid = np.zeros(n, dtype=np.bool_)
        count = 0
        for i in range(n):
            v = x[lo + i]
            if not np.isnan(v):
                same[i] = v
                wide[i] = np.float64(v)
                valid[i] = True
                count += 1
        one[0] = count
        if count == 0:
            one[1] = np.nan
        else:
            one[1] = _pairwise_sum(same, 0, n) / one[0]
        if count <= 1:
            one[2] = np.nan
        else:
            avg = _pairwise_sum(wide, 0, n) / np.float64(one[0])
            sqr = np.zeros(n, dtype=np.float64)
            for i in range(n):
                if valid[i]:
                    d = avg - wide[i]
                    sqr[i] = d * d
            one[2] = _pairwise_sum(sqr, 0, n) / np.float64(count - 1)  # the variance, rounded to x's dtype
            one[2] = np.sqrt(one[2:3])[0]
        for i in range(n):
            out[lo + i] = (x[lo + i] - one[1]) / one[2]


def date_order(frame: pl.DataFrame) -> tuple[I64, I64]:
    """The row order by (datetime, code) (Qlib's frame order) and the start of each date in it, plus the
    row count as the last element."""
    order = frame.select(pl.arg_sort_by("datetime", "code")).to_series().to_numpy().astype(np.int64)
    dates = frame.get_column("datetime").to_numpy()[order]
    if dates.shape[0] == 0:
        return order, np.zeros(1, dtype=np.int64)
    changed = np.flatnonzero(dates[1:] != dates[:-1]) + 1
    starts = np.concatenate([[0], changed, [dates.shape[0]]]).astype(np.int64)
    return order, starts


def cs_zscore(column: pl.Series, order: I64, starts: I64) -> pl.Series:
    """``column`` z-scored per date as pandas does (:func:`date_order` gives ``order`` and ``starts``).
    A float32 column stays float32; any other numeric column is computed in float64. Null is NaN."""
    dtype = pl.Float32 if column.dtype == pl.Float32 else pl.Float64
    values = column.cast(dtype).fill_null(float("nan")).to_numpy()
    sorted_values: Floats = np.ascontiguousarray(values[order])
    out_sorted = np.empty_like(sorted_values)
    with np.errstate(all="ignore"):
        _cs_zscore(sorted_values, starts, out_sorted)
    out = np.empty_like(sorted_values)
    out[order] = out_sorted
    return pl.Series(column.name, out, dtype=dtype)
