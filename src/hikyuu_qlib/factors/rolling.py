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
* means, sums and variances are pandas' running updates, not exact per-window sums: their rounding
  depends on where the running state began, so each window's state begins where Qlib's query of the
  expression begins (the request's start date less the expression's window, or the code's first row);
  sums and means of a window whose valid values are all equal are exact (pandas tracks runs of equal
  values and returns ``value * count``), but its variance is not: it keeps the rounding residual of the
  values that left the window unless pandas' cancellation check recomputes the window;
* ``Std`` is the sample standard deviation (``ddof=1``, NaN below two values, 0 where the running
  variance is negative);
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


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _valid(v: float) -> float:  # pragma: no cover - compiled
    """``v``, or NaN when it is not finite (pandas' rolling treats ±inf as missing)."""
    return v if np.isfinite(v) else np.nan


@njit(nogil=True, cache=True, error_model="numpy")
def moments(
    x: F32,
    s: int,
    e: int,
    windows: I64,
    begins: I64,
    live: I64,
    means: F64,
    sums: F64,
    stds: F64,
    want_std: bool,
) -> None:  # pragma: no cover
    """Per window ``k``: pandas' rolling mean, sum and sample std of ``x`` over rows ``begins[k]..e``.

    Each window keeps pandas' own running state from its first row ``begins[k]`` (where Qlib's query of
    that expression starts): a compensated sum with separate compensations for the values entering and
    leaving, and a run of equal values that makes the mean and the sum of an all-equal window exact;
    the variance is Welford's update with a compensated mean, recomputed over the window whenever an
    update loses most of its significant digits (a large value leaving a window of small ones), and its
    square root is 0 where it is negative. The rows before ``begins[k]`` are not read.
    Outputs are ``(windows, e - s)`` scratch arrays indexed from ``s``.
    """
    tol = 1000.0 * np.finfo(np.float64).eps
    for k in range(windows.shape[0]):
        w = windows[k]
        b = begins[k]
        nobs = 0
        neg = 0
        total = 0.0
        c_in = 0.0
        c_out = 0.0
        run = 0
        prev = np.nan
        vn = 0.0
        vmean = 0.0
        m2 = 0.0
        vc_in = 0.0
        vc_out = 0.0
        shaky = False
        for i in range(b, e):
            v = _valid(np.float64(x[i]))
            if i == b:
                prev = v
            if i - w >= b:
                old = _valid(np.float64(x[i - w]))
                if not np.isnan(old):
                    nobs -= 1
                    y = -old - c_out
                    t = total + y
                    c_out = t - total - y
                    total = t
                    if np.signbit(old):
                        neg -= 1
                    if want_std:
                        before = m2
                        vn -= 1.0
                        if vn != 0.0:
                            pm = vmean - vc_out
                            y = old - vc_out
                            t = y - vmean
                            vc_out = t + vmean - y
                            vmean = vmean - t / vn
                            m2 = m2 - (old - pm) * (old - vmean)
                            if before * tol > m2:
                                shaky = True
                        else:
                            vmean = 0.0
                            m2 = 0.0
                            shaky = False
            if not np.isnan(v):
                nobs += 1
                y = v - c_in
                t = total + y
                c_in = t - total - y
                total = t
                if np.signbit(v):
                    neg += 1
                run = run + 1 if v == prev else 1
                prev = v
                if want_std:
                    before = m2
                    vn += 1.0
                    pm = vmean - vc_in
                    y = v - vc_in
                    t = y - vmean
                    vc_in = t + vmean - y
                    vmean = vmean + t / vn
                    m2 = m2 + (v - pm) * (v - vmean)
                    if before * tol > m2:
                        shaky = True
            if want_std and shaky:
                vn = 0.0
                vmean = 0.0
                m2 = 0.0
                vc_in = 0.0
                vc_out = 0.0
                for r in range(max(b, i - w + 1), i + 1):
                    u = _valid(np.float64(x[r]))
                    if not np.isnan(u):
                        vn += 1.0
                        pm = vmean - vc_in
                        y = u - vc_in
                        t = y - vmean
                        vc_in = t + vmean - y
                        vmean = vmean + t / vn
                        m2 = m2 + (u - pm) * (u - vmean)
                shaky = False
            if live[i] < 0:
                continue
            j = i - s
            if nobs > 0:
                mean = total / nobs
                if run >= nobs:
                    mean = prev
                elif (neg == 0 and mean < 0.0) or (neg == nobs and mean > 0.0):
                    mean = 0.0  # a mean of the wrong sign is rounding: pandas gives 0
                means[k, j] = mean
                sums[k, j] = prev * nobs if run >= nobs else total
            else:
                means[k, j] = np.nan
                sums[k, j] = np.nan
            if not want_std or vn <= 1.0:
                stds[k, j] = np.nan
            else:
                var = m2 / (vn - 1.0)
                stds[k, j] = 0.0 if var < 0.0 else np.sqrt(var)


@njit(nogil=True, cache=True, error_model="numpy")
def gain_sums(
    x: F32, s: int, e: int, windows: I64, begins: I64, live: I64, gain: F64, loss: F64, total: F64
) -> None:  # pragma: no cover
    """Per window: pandas' rolling sums of ``Greater(d, 0)``, ``Greater(-d, 0)`` and ``Abs(d)``.

    ``d`` is ``x - Ref(x, 1)`` in float32 (NaN on a code's first row), as Qlib computes it; each sum is
    pandas' (see :func:`moments`) from the window's first row ``begins[k]``.
    """
    nw = windows.shape[0]
    vals = np.empty(3)
    olds = np.empty(3)
    tot = np.zeros(3)
    c_in = np.zeros(3)
    c_out = np.zeros(3)
    run = np.zeros(3, dtype=np.int64)
    prev = np.empty(3)
    zero = np.float32(0.0)
    for k in range(nw):
        w = windows[k]
        b = begins[k]
        nobs = 0
        tot[:] = 0.0
        c_in[:] = 0.0
        c_out[:] = 0.0
        run[:] = 0
        for i in range(b, e):
            d = x[i] - x[i - 1] if i > s else np.float32(np.nan)
            fresh = np.isfinite(d)
            if fresh:
                vals[0] = d if d > zero else zero
                vals[1] = -d if -d > zero else zero
                vals[2] = abs(d)
            if i == b:
                for m in range(3):
                    prev[m] = vals[m] if fresh else np.nan
            if i - w >= b:
                od = x[i - w] - x[i - w - 1] if i - w > s else np.float32(np.nan)
                if np.isfinite(od):
                    nobs -= 1
                    olds[0] = od if od > zero else zero
                    olds[1] = -od if -od > zero else zero
                    olds[2] = abs(od)
                    for m in range(3):
                        y = -olds[m] - c_out[m]
                        t = tot[m] + y
                        c_out[m] = t - tot[m] - y
                        tot[m] = t
            if fresh:
                nobs += 1
                for m in range(3):
                    y = vals[m] - c_in[m]
                    t = tot[m] + y
                    c_in[m] = t - tot[m] - y
                    tot[m] = t
                    run[m] = run[m] + 1 if vals[m] == prev[m] else 1
                    prev[m] = vals[m]
            if live[i] < 0:
                continue
            j = i - s
            for m in range(3):
                dest = gain if m == 0 else (loss if m == 1 else total)
                if nobs == 0:
                    dest[k, j] = np.nan
                elif run[m] >= nobs:
                    dest[k, j] = prev[m] * nobs
                else:
                    dest[k, j] = tot[m]


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _add_pair(
    a: float, b: float, cnt: int, mx: float, my: float, sxx: float, syy: float, sxy: float
) -> tuple[int, float, float, float, float, float]:  # pragma: no cover - compiled
    """Welford's update of the running co-moments with the pair ``(a, b)`` added."""
    cnt += 1
    dx = a - mx
    dy = b - my
    mx += dx / cnt
    my += dy / cnt
    return cnt, mx, my, sxx + dx * (a - mx), syy + dy * (b - my), sxy + dx * (b - my)


@njit(nogil=True, cache=True, error_model="numpy")
def corr(
    x: F32, y: F32, s: int, e: int, windows: I64, begins: I64, live: I64, out: F64
) -> None:  # pragma: no cover - compiled
    """Per window: Pearson correlation over the pairs where both values are finite (NaN below two, or
    where either side's co-moment is not positive), as pandas 3's rolling ``corr``: running co-moments
    (Welford's update, the leaving pair removed before the arriving pair is added) from the window's
    first row ``begins[k]``, recomputed over the window when one of them falls below a thousandth of
    the machine epsilon times the largest value it held since the last recomputation (the rounding
    left by a large value that left the window would otherwise dominate it: a window of equal values
    then has exactly zero variance, hence NaN)."""
    tol = 1000.0 * np.finfo(np.float64).eps
    for k in range(windows.shape[0]):
        w = windows[k]
        cnt = 0
        mx = 0.0
        my = 0.0
        sxx = 0.0
        syy = 0.0
        sxy = 0.0
        pxx = 0.0
        pyy = 0.0
        pxy = 0.0
        for i in range(begins[k], e):
            if i - w >= begins[k]:
                oa = np.float64(x[i - w])
                ob = np.float64(y[i - w])
                if np.isfinite(oa) and np.isfinite(ob):
                    cnt -= 1
                    if cnt == 0:
                        mx = 0.0
                        my = 0.0
                        sxx = 0.0
                        syy = 0.0
                        sxy = 0.0
                    else:
                        dx = oa - mx
                        dy = ob - my
                        mx -= dx / cnt
                        my -= dy / cnt
                        sxx -= dx * (oa - mx)
                        syy -= dy * (ob - my)
                        sxy -= dx * (ob - my)
            a = np.float64(x[i])
            b = np.float64(y[i])
            if np.isfinite(a) and np.isfinite(b):
                cnt, mx, my, sxx, syy, sxy = _add_pair(a, b, cnt, mx, my, sxx, syy, sxy)
            pxx = max(pxx, sxx)
            pyy = max(pyy, syy)
            pxy = max(pxy, abs(sxy))
            if pxx * tol > sxx or pyy * tol > syy or pxy * tol > abs(sxy):
                cnt = 0
                mx = 0.0
                my = 0.0
                sxx = 0.0
                syy = 0.0
                sxy = 0.0
                for r in range(max(begins[k], i - w + 1), i + 1):
                    a = np.float64(x[r])
                    b = np.float64(y[r])
                    if np.isfinite(a) and np.isfinite(b):
                        cnt, mx, my, sxx, syy, sxy = _add_pair(a, b, cnt, mx, my, sxx, syy, sxy)
                pxx = sxx
                pyy = syy
                pxy = abs(sxy)
            if live[i] < 0:
                continue
            j = i - s
            if cnt < 2 or sxx <= 0.0 or syy <= 0.0:
                out[k, j] = np.nan
            else:
                out[k, j] = sxy / np.sqrt(sxx * syy)


@njit(nogil=True, cache=True, error_model="numpy")
def regression(
    x: F32, s: int, b: int, e: int, w: int, live: I64, slope: F64, rsq: F64, resi: F64
) -> None:  # pragma: no cover
    """Slope, r-square and last residual of ``x`` on 1..N, updated as Qlib's Cython kernels do from the
    row ``b`` where Qlib's query starts (outputs indexed from ``s``), with their plain IEEE quotients: a
    window of one value whose running sums kept a rounding residual gives ±inf, not NaN.

    The r-square is returned before Qlib's near-constant mask.
    """
    na = w
    i_sum = 0.0
    x_sum = 0.0
    x2_sum = 0.0
    y_sum = 0.0
    y2_sum = 0.0
    xy_sum = 0.0
    for i in range(b, e):
        val = np.float64(x[i])
        xy_sum = xy_sum - y_sum
        x2_sum = x2_sum + i_sum - 2 * x_sum
        x_sum = x_sum - i_sum
        front = np.float64(x[i - w]) if i - b >= w else np.nan
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
        m = np.float64(w - na)
        num = m * xy_sum - x_sum * y_sum
        slope_v = num / (m * x2_sum - x_sum * x_sum)
        j = i - s
        slope[j] = slope_v
        r = num / np.sqrt((m * x2_sum - x_sum * x_sum) * (m * y2_sum - y_sum * y_sum))
        rsq[j] = r * r
        resi[j] = val - (slope_v * w + (y_sum / m - slope_v * (x_sum / m)))
