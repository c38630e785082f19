"""Rolling window primitives with Qlib's semantics, over one code's rows.

Each primitive runs over the rows ``s..e`` (one code) of an array holding all codes back to back and
writes one value per live row (``live[i] >= 0``; the others are only passed through) into a scratch
array indexed from 0 (row ``i`` goes to ``i - s``); windows are truncated at the first row of the
code. They are compiled helpers, called from the fused Alpha158 kernel
(:mod:`hikyuu_qlib.factors.alpha158_kernel`), which runs the codes in parallel. Order statistics
(extremes, quantiles, rank) are in :mod:`hikyuu_qlib.factors.rolling_order`.

Semantics follow what Qlib's expression engine produces through pandas (``min_periods=1``):

* missing values (NaN, and ±inf, which pandas' rolling treats as missing) are skipped; a window with
  no valid value gives NaN; windows are truncated at the first row of a code;
* sums and means of a window whose valid values are all equal are exact (pandas tracks runs of equal
  values and returns ``value * count``), and so is the zero variance of such a window;
* ``Std`` is the sample standard deviation (``ddof=1``, NaN below two values);
* ``IdxMax``/``IdxMin`` are 1-based positions in the (possibly truncated) window of the first maximum
  or minimum, where a NaN counts as the extreme (NumPy's ``argmax`` on the raw window);
* ``Rank`` is the average-method percentile rank of the last value among the window's valid values;
* ``Slope``/``Rsquare``/``Resi`` reproduce Qlib's incremental Cython kernels (x = 1..N, NaN skipped).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@njit(nogil=True, cache=True, error_model="numpy")
def sum_std(
    x: F32, s: int, e: int, windows: I64, live: I64, sums: F64, counts: F64, stds: F64, want_std: bool
) -> None:  # pragma: no cover
    """Per window ``k``: sum of the valid values (compensated), their count and their sample std.

    Outputs are ``(windows, e - s)`` scratch arrays; all windows advance together, row by row, so
    their independent running sums overlap in the CPU. Without ``want_std`` the std is not computed.
    """
    nw = windows.shape[0]
    cnt = np.zeros(nw, dtype=np.int64)
    tot = np.zeros(nw)
    comp = np.zeros(nw)
    mean = np.zeros(nw)
    m2 = np.zeros(nw)
    run = 0
    prev = np.nan
    for i in range(s, e):
        v = np.float64(x[i])
        fresh = np.isfinite(v)
        if fresh:
            if v == prev:
                run += 1
            else:
                run = 1
            prev = v
        j = i - s
        for k in range(nw):
            w = windows[k]
            if fresh:
                cnt[k] += 1
                y = v - comp[k]
                t = tot[k] + y
                comp[k] = (t - tot[k]) - y
                tot[k] = t
                if want_std:
                    d = v - mean[k]
                    mean[k] += d / cnt[k]
                    m2[k] += d * (v - mean[k])
            if j >= w:
                old = np.float64(x[i - w])
                if np.isfinite(old):
                    cnt[k] -= 1
                    if cnt[k] == 0:
                        tot[k] = 0.0
                        comp[k] = 0.0
                        mean[k] = 0.0
                        m2[k] = 0.0
                    else:
                        y = -old - comp[k]
                        t = tot[k] + y
                        comp[k] = (t - tot[k]) - y
                        tot[k] = t
                        if want_std:
                            d = old - mean[k]
                            mean[k] -= d / cnt[k]
                            m2[k] -= d * (old - mean[k])
            if live[i] < 0:
                continue
            c = cnt[k]
            counts[k, j] = c
            if c == 0:
                sums[k, j] = np.nan
                stds[k, j] = np.nan
            elif run >= c:
                sums[k, j] = prev * c
                stds[k, j] = 0.0 if c > 1 else np.nan
            else:
                sums[k, j] = tot[k]
                if c < 2 or not want_std:
                    stds[k, j] = np.nan
                else:
                    stds[k, j] = np.sqrt(max(m2[k], 0.0) / (c - 1))


@njit(nogil=True, cache=True, error_model="numpy")
def gain_sums(
    x: F32, s: int, e: int, windows: I64, live: I64, gain: F64, loss: F64, total: F64
) -> None:  # pragma: no cover
    """Per window: the compensated sums of ``Greater(d, 0)``, ``Greater(-d, 0)`` and ``Abs(d)``.

    ``d`` is ``x - Ref(x, 1)`` in float32 (NaN on a code's first row), as Qlib computes it; each sum
    skips NaN and is exact over a run of equal values, like :func:`sum_std`.
    """
    nw = windows.shape[0]
    cnt = np.zeros(nw, dtype=np.int64)
    tot = np.zeros((3, nw))
    comp = np.zeros((3, nw))
    run = np.zeros(3, dtype=np.int64)
    prev = np.full(3, np.nan)
    vals = np.empty(3)
    olds = np.empty(3)
    zero = np.float32(0.0)
    for i in range(s, e):
        j = i - s
        d = x[i] - x[i - 1] if j > 0 else np.float32(np.nan)
        fresh = not np.isnan(d)
        if fresh:
            vals[0] = d if d > zero else zero
            vals[1] = -d if -d > zero else zero
            vals[2] = abs(d)
            for m in range(3):
                if vals[m] == prev[m]:
                    run[m] += 1
                else:
                    run[m] = 1
                prev[m] = vals[m]
        for k in range(nw):
            w = windows[k]
            if fresh:
                cnt[k] += 1
                for m in range(3):
                    y = vals[m] - comp[m, k]
                    t = tot[m, k] + y
                    comp[m, k] = (t - tot[m, k]) - y
                    tot[m, k] = t
            if j > w:
                od = x[i - w] - x[i - w - 1]
                if not np.isnan(od):
                    cnt[k] -= 1
                    olds[0] = od if od > zero else zero
                    olds[1] = -od if -od > zero else zero
                    olds[2] = abs(od)
                    for m in range(3):
                        if cnt[k] == 0:
                            tot[m, k] = 0.0
                            comp[m, k] = 0.0
                        else:
                            y = -olds[m] - comp[m, k]
                            t = tot[m, k] + y
                            comp[m, k] = (t - tot[m, k]) - y
                            tot[m, k] = t
            if live[i] < 0:
                continue
            c = cnt[k]
            for m in range(3):
                dest = gain if m == 0 else (loss if m == 1 else total)
                if c == 0:
                    dest[k, j] = np.nan
                elif run[m] >= c:
                    dest[k, j] = prev[m] * c
                else:
                    dest[k, j] = tot[m, k]


@njit(nogil=True, cache=True, error_model="numpy")
def corr(
    x: F32, y: F32, s: int, e: int, windows: I64, live: I64, out: F64
) -> None:  # pragma: no cover - compiled
    """Per window: Pearson correlation over the pairs where both values are valid (NaN below two)."""
    nw = windows.shape[0]
    cnt = np.zeros(nw, dtype=np.int64)
    mx = np.zeros(nw)
    my = np.zeros(nw)
    sxx = np.zeros(nw)
    syy = np.zeros(nw)
    sxy = np.zeros(nw)
    for i in range(s, e):
        a = np.float64(x[i])
        b = np.float64(y[i])
        fresh = np.isfinite(a) and np.isfinite(b)
        j = i - s
        for k in range(nw):
            w = windows[k]
            if fresh:
                cnt[k] += 1
                dx = a - mx[k]
                dy = b - my[k]
                mx[k] += dx / cnt[k]
                my[k] += dy / cnt[k]
                sxx[k] += dx * (a - mx[k])
                syy[k] += dy * (b - my[k])
                sxy[k] += dx * (b - my[k])
            if j >= w:
                oa = np.float64(x[i - w])
                ob = np.float64(y[i - w])
                if np.isfinite(oa) and np.isfinite(ob):
                    cnt[k] -= 1
                    if cnt[k] == 0:
                        mx[k] = 0.0
                        my[k] = 0.0
                        sxx[k] = 0.0
                        syy[k] = 0.0
                        sxy[k] = 0.0
                    else:
                        dx = oa - mx[k]
                        dy = ob - my[k]
                        mx[k] -= dx / cnt[k]
                        my[k] -= dy / cnt[k]
                        sxx[k] -= dx * (oa - mx[k])
                        syy[k] -= dy * (ob - my[k])
                        sxy[k] -= dx * (ob - my[k])
            if live[i] < 0:
                continue
            if cnt[k] < 2 or sxx[k] <= 0.0 or syy[k] <= 0.0:
                out[k, j] = np.nan
            else:
                out[k, j] = sxy[k] / np.sqrt(sxx[k] * syy[k])


@njit(nogil=True, cache=True, error_model="numpy")
def regression(
    x: F32, s: int, e: int, w: int, live: I64, slope: F64, rsq: F64, resi: F64
) -> None:  # pragma: no cover
    """Slope, r-square and last residual of ``x`` on 1..N, updated as Qlib's Cython kernels do.

    The r-square is returned before Qlib's near-constant mask.
    """
    na = w
    i_sum = 0.0
    x_sum = 0.0
    x2_sum = 0.0
    y_sum = 0.0
    y2_sum = 0.0
    xy_sum = 0.0
    for i in range(s, e):
        val = np.float64(x[i])
        xy_sum = xy_sum - y_sum
        x2_sum = x2_sum + i_sum - 2 * x_sum
        x_sum = x_sum - i_sum
        front = np.float64(x[i - w]) if i - s >= w else np.nan
        if not np.isnan(front):
            i_sum -= 1
            y_sum -= front
            y2_sum -= front * front
        else:
            na -= 1
        if np.isnan(val):
            na += 1
        else:
            i_sum += 1
            x_sum += w
            x2_sum += w * w
            y_sum += val
            y2_sum += val * val
            xy_sum += w * val
        if live[i] < 0:
            continue
        m = w - na
        num = m * xy_sum - x_sum * y_sum
        den_x = m * x2_sum - x_sum * x_sum
        den_y = m * y2_sum - y_sum * y_sum
        b = num / den_x if den_x != 0.0 else np.nan
        j = i - s
        slope[j] = b
        prod = den_x * den_y
        if prod > 0.0:
            r = num / np.sqrt(prod)
            rsq[j] = r * r
        else:
            rsq[j] = np.nan
        if m > 0:
            resi[j] = val - (b * w + (y_sum / m - b * (x_sum / m)))
        else:
            resi[j] = np.nan
