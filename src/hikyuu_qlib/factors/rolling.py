"""Rolling window kernels with Qlib's semantics, over many codes at once.

Every kernel takes one contiguous float64 array holding all codes back to back (a frame sorted by
(code, datetime)), the group boundaries (``starts``: the first row of each code plus the total length
as the last element) and a tuple of window sizes; it returns one row per window size. Windows never
cross from one code into the next, and the groups run in parallel.

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
from numba import njit, prange

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@njit(parallel=True, nogil=True, cache=True)
def sum_std(x: F64, starts: I64, windows: I64) -> tuple[F64, F64, F64]:  # pragma: no cover - compiled
    """Per window: sum of valid values, their count, and their sample standard deviation."""
    n = x.shape[0]
    nw = windows.shape[0]
    sums = np.empty((nw, n))
    counts = np.empty((nw, n))
    stds = np.empty((nw, n))
    for g in prange(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        for k in range(nw):
            w = windows[k]
            cnt = 0
            tot = 0.0
            comp = 0.0
            mean = 0.0
            m2 = 0.0
            run = 0
            prev = np.nan
            for i in range(s, e):
                v = x[i]
                if np.isfinite(v):
                    cnt += 1
                    y = v - comp
                    t = tot + y
                    comp = (t - tot) - y
                    tot = t
                    d = v - mean
                    mean += d / cnt
                    m2 += d * (v - mean)
                    if v == prev:
                        run += 1
                    else:
                        run = 1
                    prev = v
                if i - s >= w:
                    old = x[i - w]
                    if np.isfinite(old):
                        cnt -= 1
                        if cnt == 0:
                            tot = 0.0
                            comp = 0.0
                            mean = 0.0
                            m2 = 0.0
                        else:
                            y = -old - comp
                            t = tot + y
                            comp = (t - tot) - y
                            tot = t
                            d = old - mean
                            mean -= d / cnt
                            m2 -= d * (old - mean)
                counts[k, i] = cnt
                if cnt == 0:
                    sums[k, i] = np.nan
                    stds[k, i] = np.nan
                    continue
                if run >= cnt:
                    sums[k, i] = prev * cnt
                    stds[k, i] = 0.0 if cnt > 1 else np.nan
                    continue
                sums[k, i] = tot
                if cnt < 2:
                    stds[k, i] = np.nan
                else:
                    stds[k, i] = np.sqrt(max(m2, 0.0) / (cnt - 1))
    return sums, counts, stds


@njit(parallel=True, nogil=True, cache=True)
def corr(x: F64, y: F64, starts: I64, windows: I64) -> F64:  # pragma: no cover - compiled
    """Per window: Pearson correlation over the pairs where both values are valid (NaN below two)."""
    n = x.shape[0]
    nw = windows.shape[0]
    out = np.empty((nw, n))
    for g in prange(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        for k in range(nw):
            w = windows[k]
            cnt = 0
            mx = 0.0
            my = 0.0
            sxx = 0.0
            syy = 0.0
            sxy = 0.0
            for i in range(s, e):
                a = x[i]
                b = y[i]
                if np.isfinite(a) and np.isfinite(b):
                    cnt += 1
                    dx = a - mx
                    dy = b - my
                    mx += dx / cnt
                    my += dy / cnt
                    sxx += dx * (a - mx)
                    syy += dy * (b - my)
                    sxy += dx * (b - my)
                if i - s >= w:
                    a = x[i - w]
                    b = y[i - w]
                    if np.isfinite(a) and np.isfinite(b):
                        cnt -= 1
                        if cnt == 0:
                            mx = 0.0
                            my = 0.0
                            sxx = 0.0
                            syy = 0.0
                            sxy = 0.0
                        else:
                            dx = a - mx
                            dy = b - my
                            mx -= dx / cnt
                            my -= dy / cnt
                            sxx -= dx * (a - mx)
                            syy -= dy * (b - my)
                            sxy -= dx * (b - my)
                if cnt < 2 or sxx <= 0.0 or syy <= 0.0:
                    out[k, i] = np.nan
                else:
                    out[k, i] = sxy / np.sqrt(sxx * syy)
    return out


@njit(parallel=True, nogil=True, cache=True)
def regression(x: F64, starts: I64, windows: I64) -> tuple[F64, F64, F64]:  # pragma: no cover - compiled
    """Per window: slope, r-square and last residual of ``x`` on 1..N, as Qlib's Cython kernels.

    The running sums are updated exactly as Qlib updates them, so the results agree with Qlib's
    to rounding; the r-square is returned before Qlib's near-constant mask.
    """
    n = x.shape[0]
    nw = windows.shape[0]
    slope = np.empty((nw, n))
    rsq = np.empty((nw, n))
    resi = np.empty((nw, n))
    for g in prange(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        for k in range(nw):
            w = windows[k]
            na = w
            i_sum = 0.0
            x_sum = 0.0
            x2_sum = 0.0
            y_sum = 0.0
            y2_sum = 0.0
            xy_sum = 0.0
            for i in range(s, e):
                val = x[i]
                xy_sum = xy_sum - y_sum
                x2_sum = x2_sum + i_sum - 2 * x_sum
                x_sum = x_sum - i_sum
                front = x[i - w] if i - s >= w else np.nan
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
                m = w - na
                num = m * xy_sum - x_sum * y_sum
                den_x = m * x2_sum - x_sum * x_sum
                den_y = m * y2_sum - y_sum * y_sum
                b = num / den_x if den_x != 0.0 else np.nan
                slope[k, i] = b
                prod = den_x * den_y
                if prod > 0.0:
                    r = num / np.sqrt(prod)
                    rsq[k, i] = r * r
                else:
                    rsq[k, i] = np.nan
                if m > 0:
                    resi[k, i] = val - (b * w + (y_sum / m - b * (x_sum / m)))
                else:
                    resi[k, i] = np.nan
    return slope, rsq, resi


@njit(parallel=True, nogil=True, cache=True)
def extremum(x: F64, starts: I64, windows: I64, largest: bool) -> tuple[F64, F64]:  # pragma: no cover
    """Per window: the max (or min) of the valid values, and Qlib's 1-based IdxMax (or IdxMin).

    The position is that of NumPy's ``argmax``/``argmin`` on the raw truncated window: the first NaN
    when there is one, the first extreme otherwise; NaN when the window holds no valid value.
    A monotonic queue of candidate rows keeps this linear in the number of rows.
    """
    n = x.shape[0]
    nw = windows.shape[0]
    value = np.empty((nw, n))
    index = np.empty((nw, n))
    sign = 1.0 if largest else -1.0
    for g in prange(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        queue = np.empty(e - s, dtype=np.int64)
        nans = np.empty(e - s, dtype=np.int64)
        for k in range(nw):
            w = windows[k]
            head = 0
            tail = 0
            nan_head = 0
            nan_tail = 0
            for i in range(s, e):
                lo = max(s, i - w + 1)
                v = x[i]
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
                if head == tail:
                    value[k, i] = np.nan
                    index[k, i] = np.nan
                    continue
                value[k, i] = x[queue[head]]
                first = nans[nan_head] if nan_head < nan_tail else queue[head]
                index[k, i] = first - lo + 1
    return value, index


@njit(parallel=True, nogil=True, cache=True)
def rank_last(x: F64, starts: I64, windows: I64) -> F64:  # pragma: no cover - compiled
    """Per window: the percentile rank (average method) of the last value among the valid ones.

    ``windows`` must be ascending: one backward scan per row serves every window size.
    """
    n = x.shape[0]
    nw = windows.shape[0]
    out = np.empty((nw, n))
    longest = windows[nw - 1]
    for g in prange(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        for i in range(s, e):
            last = x[i]
            if not np.isfinite(last):
                for k in range(nw):
                    out[k, i] = np.nan
                continue
            less = 0
            equal = 0
            valid = 0
            k = 0
            for back in range(min(longest, i - s + 1)):
                v = x[i - back]
                less += v < last
                equal += v == last
                valid += np.isfinite(v)
                while k < nw and back + 1 == windows[k]:
                    out[k, i] = (less + (equal + 1) / 2.0) / valid
                    k += 1
            while k < nw:
                out[k, i] = (less + (equal + 1) / 2.0) / valid
                k += 1
    return out


@njit(parallel=True, nogil=True, cache=True)
def quantiles(x: F64, starts: I64, windows: I64, qs: F64) -> F64:  # pragma: no cover - compiled
    """Per window and quantile: the linearly interpolated quantile of the valid values.

    Returns shape (windows, quantiles, rows). A sorted copy of each window's valid values is kept
    up to date by insertion and deletion.
    """
    n = x.shape[0]
    nw = windows.shape[0]
    nq = qs.shape[0]
    out = np.empty((nw, nq, n))
    for g in prange(starts.shape[0] - 1):
        s = starts[g]
        e = starts[g + 1]
        for k in range(nw):
            w = windows[k]
            buf = np.empty(w)
            cnt = 0
            for i in range(s, e):
                if i - s >= w:
                    old = x[i - w]
                    if np.isfinite(old):
                        p = np.searchsorted(buf[:cnt], old)
                        for j in range(p, cnt - 1):
                            buf[j] = buf[j + 1]
                        cnt -= 1
                v = x[i]
                if np.isfinite(v):
                    p = np.searchsorted(buf[:cnt], v)
                    for j in range(cnt, p, -1):
                        buf[j] = buf[j - 1]
                    buf[p] = v
                    cnt += 1
                for m in range(nq):
                    if cnt == 0:
                        out[k, m, i] = np.nan
                        continue
                    h = (cnt - 1) * qs[m]
                    lo = int(np.floor(h))
                    hi = min(lo + 1, cnt - 1)
                    frac = h - lo
                    out[k, m, i] = buf[lo] + (buf[hi] - buf[lo]) * frac
    return out


def shift(x: npt.NDArray[np.float32], starts: I64, lag: int) -> npt.NDArray[np.float32]:
    """Qlib's ``Ref(x, lag)`` within each group: the value ``lag`` rows earlier (later if negative)."""
    out = np.full_like(x, np.nan)
    n = x.shape[0]
    if lag == 0 or abs(lag) >= n:
        return x.copy() if lag == 0 else out
    if lag > 0:
        out[lag:] = x[:-lag]
    else:
        out[:lag] = x[-lag:]
    sizes = np.diff(starts)
    offset = np.arange(n, dtype=np.int64) - np.repeat(starts[:-1], sizes)
    if lag > 0:
        out[offset < lag] = np.nan
    else:
        out[offset >= np.repeat(sizes, sizes) + lag] = np.nan
    return out
