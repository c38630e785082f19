"""The fused Alpha158 kernel: every rolling family over every window, code by code, in parallel.

One compiled pass per code computes the rolling primitives of :mod:`hikyuu_qlib.factors.rolling`
into scratch arrays of the code's length, then writes the finished features of the kept rows
straight into the float32 output matrix (one row per feature, one column per kept row). Nothing is
materialised for all rows and all 158 features at once.

The arithmetic is Qlib's: element-wise inputs arrive as float32 (computed by NumPy, as in Qlib),
rolling results are float64 (as pandas gives), quotients of a float64 by a float32 field are taken in
float64 and everything is rounded to float32 at the end.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from hikyuu_qlib.domain.numeric import EPS
from hikyuu_qlib.factors import rolling, rolling_order

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
OUT = npt.NDArray[np.float32]

#: The families in Qlib's order; feature (family ``f``, window ``k``) is row ``FIRST + f * 5 + k``.
FAMILIES: tuple[str, ...] = (
    "ROC", "MA", "STD", "BETA", "RSQR", "RESI", "MAX", "MIN", "QTLU", "QTLD", "RANK", "RSV", "IMAX",
    "IMIN", "IMXD", "CORR", "CORD", "CNTP", "CNTN", "CNTD", "SUMP", "SUMN", "SUMD", "VMA", "VSTD",
    "WVMA", "VSUMP", "VSUMN", "VSUMD",
)  # fmt: skip
FIRST = 13
NW = 5
#: ``np.isclose(std, 0, atol=2e-05)``, Qlib's near-constant mask for ``Rsquare`` and ``Corr``.
FLAT = 2e-05

ROC, MA, STD, BETA, RSQR, RESI, MAX, MIN, QTLU, QTLD, RANK, RSV, IMAX, IMIN, IMXD = range(15)
CORR, CORD, CNTP, CNTN, CNTD, SUMP, SUMN, SUMD, VMA, VSTD, WVMA, VSUMP, VSUMN, VSUMD = range(15, 29)


@njit(nogil=True, cache=True, error_model="numpy")
def _col(family: int, k: int) -> int:  # pragma: no cover - compiled
    return FIRST + family * NW + k


@njit(nogil=True, cache=True, error_model="numpy")
def _flat(std: float) -> bool:  # pragma: no cover - compiled
    return abs(std) <= FLAT


@njit(nogil=True, cache=True, error_model="numpy")
def _close_families(
    c: F32, lv: F32, s: int, e: int, windows: I64, begins: I64, rows: I64, out: OUT, t: F64
) -> None:  # pragma: no cover - compiled
    """ROC, MA, STD, BETA, RSQR, RESI and CORR (which shares the close's std)."""
    n = e - s
    means, sums, stds, slope, rsq, resi = t[0, :, :n], t[1, :, :n], t[2, :, :n], t[3], t[4], t[5]
    rolling.moments(c, s, e, windows, begins, rows, means, sums, stds, True)
    for k in range(windows.shape[0]):
        w = windows[k]
        rolling.regression(c, s, begins[k], e, w, rows, slope[k, :n], rsq[k, :n], resi[k, :n])
        for i in range(s, e):
            r = rows[i]
            if r < 0:
                continue
            j = i - s
            cf = c[i]
            cd = np.float64(cf)
            out[_col(ROC, k), r] = c[i - w] / cf if j >= w else np.float32(np.nan)
            out[_col(MA, k), r] = means[k, j] / cd
            out[_col(STD, k), r] = stds[k, j] / cd
            out[_col(BETA, k), r] = slope[k, j] / cd
            out[_col(RSQR, k), r] = np.nan if _flat(stds[k, j]) else rsq[k, j]
            out[_col(RESI, k), r] = resi[k, j] / cd
    _correlation(c, lv, stds, CORR, s, e, windows, begins, rows, out, t)


@njit(nogil=True, cache=True, error_model="numpy")
def _extremes(
    c: F32, h: F32, lo: F32, s: int, e: int, windows: I64, rows: I64, out: OUT, t: F64, q: I64
) -> None:  # pragma: no cover - compiled
    """MAX, MIN, QTLU, QTLD, RANK, RSV, IMAX, IMIN, IMXD."""
    n = e - s
    for k in range(windows.shape[0]):
        w = windows[k]
        hi_v, hi_i, lo_v, lo_i = t[0, k, :n], t[1, k, :n], t[2, k, :n], t[3, k, :n]
        rolling_order.extremum(h, s, e, w, rows, q[2], True, hi_v, hi_i, q[0, :n], q[1, :n])
        rolling_order.extremum(lo, s, e, w, rows, q[2], False, lo_v, lo_i, q[0, :n], q[1, :n])
        upper, lower, rank, buf = t[4, k, :n], t[5, k, :n], t[6, k, :n], t[7, 0, :w]
        rolling_order.quantiles_rank(c, s, e, w, rows, q[2], buf, upper, lower, rank)
        for i in range(s, e):
            r = rows[i]
            if r < 0:
                continue
            j = i - s
            cd = np.float64(c[i])
            out[_col(MAX, k), r] = hi_v[j] / cd
            out[_col(MIN, k), r] = lo_v[j] / cd
            out[_col(QTLU, k), r] = upper[j] / cd
            out[_col(QTLD, k), r] = lower[j] / cd
            out[_col(RANK, k), r] = rank[j]
            out[_col(RSV, k), r] = (cd - lo_v[j]) / ((hi_v[j] - lo_v[j]) + EPS)
            out[_col(IMAX, k), r] = hi_i[j] / w
            out[_col(IMIN, k), r] = lo_i[j] / w
            out[_col(IMXD, k), r] = (hi_i[j] - lo_i[j]) / w


@njit(nogil=True, cache=True, error_model="numpy")
def _correlation(
    x: F32,
    y: F32,
    sx: F64,
    family: int,
    s: int,
    e: int,
    windows: I64,
    begins: I64,
    rows: I64,
    out: OUT,
    t: F64,
) -> None:  # pragma: no cover - compiled
    """CORR or CORD: the correlation, NaN where either side's std is near zero.

    ``sx`` is the std of ``x`` per window, or an empty array to compute it here.
    """
    n = e - s
    value, mean, total, sy = t[6, :, :n], t[7, :, :n], t[8, :, :n], t[9, :, :n]
    rolling.corr(x, y, s, e, windows, begins, rows, value)
    rolling.moments(y, s, e, windows, begins, rows, mean, total, sy, True)
    if sx.shape[1] == 0:
        sx = t[10, :, :n]
        rolling.moments(x, s, e, windows, begins, rows, mean, total, sx, True)
    for k in range(windows.shape[0]):
        col = _col(family, k)
        for i in range(s, e):
            r = rows[i]
            if r >= 0:
                j = i - s
                out[col, r] = np.nan if _flat(sx[k, j]) or _flat(sy[k, j]) else value[k, j]


@njit(nogil=True, cache=True, error_model="numpy")
def _counts(c: F32, s: int, e: int, k: int, w: int, rows: I64, out: OUT) -> None:  # pragma: no cover
    """CNTP, CNTN, CNTD: the share of rows up (down) on the previous close."""
    up = 0
    down = 0
    for i in range(s, e):
        if i > s:
            up += c[i] > c[i - 1]
            down += c[i] < c[i - 1]
        if i - s >= w:
            old = i - w
            if old > s:
                up -= c[old] > c[old - 1]
                down -= c[old] < c[old - 1]
        r = rows[i]
        if r >= 0:
            cnt = min(i - s + 1, w)
            pu = up / cnt
            pd = down / cnt
            out[_col(CNTP, k), r] = pu
            out[_col(CNTN, k), r] = pd
            out[_col(CNTD, k), r] = pu - pd


@njit(nogil=True, cache=True, error_model="numpy")
def _gains(
    x: F32, family: int, s: int, e: int, windows: I64, begins: I64, rows: I64, out: OUT, t: F64
) -> None:  # pragma: no cover - compiled
    """SUMP, SUMN, SUMD (or the volume's): rolling gains and losses over the rolling total move."""
    n = e - s
    gain, loss, total = t[0, :, :n], t[1, :, :n], t[2, :, :n]
    rolling.gain_sums(x, s, e, windows, begins, rows, gain, loss, total)
    for k in range(windows.shape[0]):
        for i in range(s, e):
            r = rows[i]
            if r >= 0:
                j = i - s
                den = total[k, j] + EPS
                out[_col(family, k), r] = gain[k, j] / den
                out[_col(family + 1, k), r] = loss[k, j] / den
                out[_col(family + 2, k), r] = (gain[k, j] - loss[k, j]) / den


@njit(nogil=True, cache=True, error_model="numpy")
def _volumes(
    v: F32, wv: F32, s: int, e: int, windows: I64, begins: I64, rows: I64, out: OUT, t: F64
) -> None:  # pragma: no cover
    """VMA, VSTD, WVMA."""
    n = e - s
    means, sums, stds = t[0, :, :n], t[1, :, :n], t[2, :, :n]
    wmean, wsum, wstd = t[3, :, :n], t[4, :, :n], t[5, :, :n]
    rolling.moments(v, s, e, windows, begins, rows, means, sums, stds, True)
    rolling.moments(wv, s, e, windows, begins, rows, wmean, wsum, wstd, True)
    for k in range(windows.shape[0]):
        for i in range(s, e):
            r = rows[i]
            if r >= 0:
                j = i - s
                ve = np.float64(v[i] + np.float32(EPS))
                out[_col(VMA, k), r] = means[k, j] / ve
                out[_col(VSTD, k), r] = stds[k, j] / ve
                out[_col(WVMA, k), r] = wstd[k, j] / (wmean[k, j] + EPS)


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def rolling_features(
    fields: F32, starts: I64, origins: I64, windows: I64, rows: I64, out: OUT
) -> None:  # pragma: no cover - compiled
    """All 145 rolling features of the kept rows (``rows[i]``: output column of row ``i``, or -1).

    ``origins[g]``: code ``g``'s first row on or after the start date. A feature over window ``w``
    keeps its running state from ``origins[g] - w + 1`` (or the code's first row), where Qlib's query
    of its expression starts (the start date less the expression's extended window); the order
    statistics depend on the window's values only.

    ``fields`` rows: close, high, low, volume, log(volume+1), close/Ref(close,1),
    log(volume/Ref(volume,1)+1), |close/Ref(close,1)-1|*volume (float32, computed as Qlib does).
    """
    c, h, lo, v = fields[0], fields[1], fields[2], fields[3]
    lv, cx, cy, wv = fields[4], fields[5], fields[6], fields[7]
    nw = windows.shape[0]
    for grp in prange(starts.shape[0] - 1):
        s = starts[grp]
        e = starts[grp + 1]
        n = e - s
        first = e
        for i in range(s, e):
            if rows[i] >= 0:
                first = i
                break
        if first == e:
            continue
        t = np.empty((11, nw, max(n, windows[-1])))
        q = np.empty((3, n), dtype=np.int64)
        # q[2]: rows from each row to the next kept row (the order statistics skip the others)
        gap = n + windows[-1]
        for i in range(e - 1, s - 1, -1):
            gap = 0 if rows[i] >= 0 else gap + 1
            q[2, i - s] = gap
        begins = np.empty(nw, dtype=np.int64)
        for k in range(nw):
            begins[k] = max(s, min(origins[grp], first) - windows[k] + 1)
        _close_families(c, lv, s, e, windows, begins, rows, out, t)
        _extremes(c, h, lo, s, e, windows, rows, out, t, q)
        _correlation(cx, cy, t[0, :, :0], CORD, s, e, windows, begins, rows, out, t)
        for k in range(nw):
            _counts(c, s, e, k, windows[k], rows, out)
        _gains(c, SUMP, s, e, windows, begins, rows, out, t)
        _volumes(v, wv, s, e, windows, begins, rows, out, t)
        _gains(v, VSUMP, s, e, windows, begins, rows, out, t)
