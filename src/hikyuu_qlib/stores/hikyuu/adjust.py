"""Price adjustment for splits and dividends (复权), as Hikyuu's ``KData`` computes it.

Each effective weight event on ex-date ``D`` is an affine map of prices ``P -> a*P + b``:

* forward (前复权), applied to bars before ``D``: ``P' = (P + priceForSell*change - 0.1*bonus) / den``
* backward (后复权), applied to bars on or after ``D``: ``P' = P*den + 0.1*bonus - priceForSell*change``

with ``change = 0.1*(countAsGift + countForSell + countOfIncreasement)`` and ``den = 1 + change``
(or ``suogu`` when that is non-zero, with no cash term). Rows where every one of those fields is zero
(only share counts changed) are skipped, as are events outside the bars' own date window
(Hikyuu fetches weights for ``[first bar day, last bar day + 1 day)``), so adjustment is relative to
the requested window exactly as a Hikyuu ``KData`` is.

The events are composed into one affine map per "segment" between ex-dates (suffix compositions for
forward, prefix compositions for backward) and each bar picks its map with ``searchsorted``: the
work is one loop over events plus a few vectorised passes over the bars.

Unlike Hikyuu, intermediate results are not rounded to the stock's price precision after each event;
values agree with Hikyuu's to within that rounding.

Volume is scaled by the inverse of the price multiplier (``1/a``: a 10-for-3 bonus issue multiplies
earlier volumes by 1.3 forward), and amount follows ``close * volume`` through the adjustment
(``amount' = amount * (close' * volume') / (close * volume)``), so bars that no event touches keep
their amount exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
from numba import njit, prange

from hikyuu_qlib.domain import Adjust
from hikyuu_qlib.domain.schema import PRICE_COLUMNS

_MS_PER_DAY = 86_400_000

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class WeightEvents:
    """Effective events of one code as arrays: ex-date (ms since epoch, midnight), multiplier
    ``den`` and cash term ``cash = priceForSell*change - 0.1*bonus`` (zero for suogu events)."""

    date_ms: I64
    den: F64
    cash: F64
    #: which input rows became events (set by ``from_arrays``), to map events back to their codes
    kept: npt.NDArray[np.bool_] | None = None

    @classmethod
    def from_frame(cls, weights: pl.DataFrame) -> WeightEvents:
        """Select and convert the events of a ``WEIGHT_SCHEMA`` frame."""
        if weights.height == 0:
            return cls.empty()
        w = weights.sort("date")
        gift = _col(w, "count_as_gift")
        sell = _col(w, "count_for_sell")
        price = _col(w, "price_for_sell")
        bonus = _col(w, "bonus")
        incr = _col(w, "count_of_increasement")
        suogu = _col(w, "suogu")
        date_ms = w.get_column("date").cast(pl.Datetime("ms")).dt.truncate("1d").cast(pl.Int64).to_numpy()
        return cls.from_arrays(date_ms, gift, sell, price, bonus, incr, suogu)

    @classmethod
    def from_arrays(
        cls, date_ms: I64, gift: F64, sell: F64, price: F64, bonus: F64, incr: F64, suogu: F64
    ) -> WeightEvents:
        """Build from natural-unit columns (already sorted by date)."""
        effective = (gift != 0) | (sell != 0) | (price != 0) | (bonus != 0) | (incr != 0) | (suogu != 0)
        change = 0.1 * (gift + sell + incr)
        has_suogu = suogu != 0
        den = np.where(has_suogu, suogu, 1.0 + change)
        cash = np.where(has_suogu, 0.0, price * change - 0.1 * bonus)
        keep = effective & ~((den == 1.0) & (cash == 0.0)) & (den != 0.0)
        return cls(
            np.ascontiguousarray(date_ms[keep], dtype=np.int64),
            np.ascontiguousarray(den[keep], dtype=np.float64),
            np.ascontiguousarray(cash[keep], dtype=np.float64),
            keep,
        )

    @classmethod
    def empty(cls) -> WeightEvents:
        return cls(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64))

    def __len__(self) -> int:
        return int(self.date_ms.shape[0])


def _col(frame: pl.DataFrame, name: str) -> F64:
    if name not in frame.columns:
        return np.zeros(frame.height, dtype=np.float64)
    return frame.get_column(name).cast(pl.Float64).fill_null(0.0).to_numpy().astype(np.float64, copy=False)


def affine_coefficients(bar_ms: I64, events: WeightEvents, adjust: Adjust) -> tuple[F64, F64]:
    """Per-bar ``(a, b)`` such that the adjusted price is ``a*P + b``.

    ``bar_ms`` are the bars' datetimes in ms since the epoch, ascending.
    """
    n = bar_ms.shape[0]
    ones = np.ones(n, dtype=np.float64)
    zeros = np.zeros(n, dtype=np.float64)
    if adjust is Adjust.NONE or n == 0 or len(events) == 0:
        return ones, zeros
    first_day = (int(bar_ms[0]) // _MS_PER_DAY) * _MS_PER_DAY
    end_day = (int(bar_ms[-1]) // _MS_PER_DAY + 1) * _MS_PER_DAY
    window = (events.date_ms >= first_day) & (events.date_ms < end_day)
    dates = events.date_ms[window]
    den = events.den[window]
    cash = events.cash[window]
    m = dates.shape[0]
    if m == 0:
        return ones, zeros
    # k = number of events whose ex-date is on or before the bar
    k = np.searchsorted(dates, bar_ms, side="right")
    seg_a = np.ones(m + 1, dtype=np.float64)
    seg_b = np.zeros(m + 1, dtype=np.float64)
    if adjust is Adjust.FORWARD:
        # bars with k events behind them get events k..m-1 applied, earliest first:
        # G_k = G_{k+1} o f_k with f_k(P) = (P + cash_k) / den_k
        for j in range(m - 1, -1, -1):
            seg_a[j] = seg_a[j + 1] / den[j]
            seg_b[j] = seg_a[j + 1] * cash[j] / den[j] + seg_b[j + 1]
    else:
        # bars with k events behind them get events 0..k-1, latest first:
        # H_k = H_{k-1} o f_{k-1} with f(P) = P*den - cash
        for j in range(m):
            seg_a[j + 1] = seg_a[j] * den[j]
            seg_b[j + 1] = seg_b[j] - seg_a[j] * cash[j]
    return seg_a[k], seg_b[k]


@njit(parallel=True, cache=True, nogil=True)
def _grouped_kernel(  # pragma: no cover - compiled
    bar_ms: I64,
    row_lo: I64,
    row_hi: I64,
    ev_lo: I64,
    ev_hi: I64,
    ev_ms: I64,
    den: F64,
    cash: F64,
    forward: bool,
    a: F64,
    b: F64,
    ins: tuple[F64, ...],
    outs: tuple[F64, ...],
    apply: bool,
) -> None:
    # one walk per code composing its events; each row's map (ca, cb) is stored in a[i], b[i], or with
    # ``apply`` used at once on the columns: rows of ``ins`` (open, high, low, close, volume, amount)
    # into the rows of ``outs`` (which may be ``ins``)
    for s in prange(row_lo.shape[0]):
        r0, r1, e0, e1 = row_lo[s], row_hi[s], ev_lo[s], ev_hi[s]
        if r1 <= r0:
            continue
        ca, cb = 1.0, 0.0
        if e1 <= e0:
            if apply:
                for i in range(r0, r1):
                    _affine_row(ca, cb, ins, outs, i)
            continue
        first_day = (bar_ms[r0] // _MS_PER_DAY) * _MS_PER_DAY
        end_day = (bar_ms[r1 - 1] // _MS_PER_DAY + 1) * _MS_PER_DAY
        if forward:  # walk back in time, composing each event dated after the bar (within the window)
            j = e1 - 1
            while j >= e0 and ev_ms[j] >= end_day:
                j -= 1
            for i in range(r1 - 1, r0 - 1, -1):
                while j >= e0 and ev_ms[j] > bar_ms[i]:
                    cb = ca * cash[j] / den[j] + cb
                    ca = ca / den[j]
                    j -= 1
                if apply:
                    _affine_row(ca, cb, ins, outs, i)
                else:
                    a[i], b[i] = ca, cb
        else:  # walk forward, composing each event dated on or before the bar (within the window)
            j = e0
            while j < e1 and ev_ms[j] < first_day:
                j += 1
            for i in range(r0, r1):
                while j < e1 and ev_ms[j] <= bar_ms[i]:
                    cb = cb - ca * cash[j]
                    ca = ca * den[j]
                    j += 1
                if apply:
                    _affine_row(ca, cb, ins, outs, i)
                else:
                    a[i], b[i] = ca, cb


@njit(inline="always")
def _affine_row(
    ai: float, bi: float, ins: tuple[F64, ...], outs: tuple[F64, ...], i: int
) -> None:  # pragma: no cover - compiled
    # the arithmetic of apply_affine for row i (read before written, so outs may be ins)
    c = ins[3][i]
    scaled = c * ai
    value = ins[5][i]
    outs[5][i] = value * ((scaled + bi) / scaled) if c != 0 else value
    outs[0][i] = ins[0][i] * ai + bi
    outs[1][i] = ins[1][i] * ai + bi
    outs[2][i] = ins[2][i] * ai + bi
    outs[3][i] = scaled + bi
    outs[4][i] = ins[4][i] / ai


_NO_COLUMNS = tuple(np.empty(0, dtype=np.float64) for _ in range(6))
_NO_ROWS = np.empty(0, dtype=np.float64)


def grouped_coefficients(
    bar_ms: I64, row_lo: I64, row_hi: I64, events: WeightEvents, ev_lo: I64, ev_hi: I64, adjust: Adjust
) -> tuple[F64, F64]:
    """:func:`affine_coefficients` for many codes at once (compiled, parallel over codes).

    Code ``s`` owns rows ``[row_lo[s], row_hi[s])`` of ``bar_ms`` and events ``[ev_lo[s], ev_hi[s])``
    of ``events`` (each code's events sorted by date).
    """
    a = np.ones(bar_ms.shape[0], dtype=np.float64)
    b = np.zeros(bar_ms.shape[0], dtype=np.float64)
    if adjust is not Adjust.NONE and len(events):
        _grouped_kernel(
            bar_ms,
            row_lo,
            row_hi,
            ev_lo,
            ev_hi,
            events.date_ms,
            events.den,
            events.cash,
            adjust is Adjust.FORWARD,
            a,
            b,
            _NO_COLUMNS,
            _NO_COLUMNS,
            False,
        )
    return a, b


def grouped_adjust(
    bar_ms: I64,
    row_lo: I64,
    row_hi: I64,
    events: WeightEvents,
    ev_lo: I64,
    ev_hi: I64,
    adjust: Adjust,
    columns: Sequence[F64],
    out: Sequence[F64],
) -> None:
    """:func:`grouped_coefficients` applied as :func:`apply_affine` applies them (same arithmetic) in the
    same pass, with no per-row coefficient arrays. ``columns`` are open, high, low, close, volume and
    amount; ``out`` receives the result and may be ``columns``."""
    _grouped_kernel(
        bar_ms,
        row_lo,
        row_hi,
        ev_lo,
        ev_hi,
        events.date_ms,
        events.den,
        events.cash,
        adjust is Adjust.FORWARD,
        _NO_ROWS,
        _NO_ROWS,
        tuple(columns),
        tuple(out),
        True,
    )


def load_kernels() -> None:
    """Load (or compile) the bulk adjustment kernels now, on a tiny input of the real argument types:
    a process's first load of a compiled kernel costs most of a second, which a caller can overlap
    with other work."""
    one = np.zeros(1, dtype=np.int64)
    events = WeightEvents(one.copy(), np.ones(1), np.zeros(1))
    columns = [np.ones(1) for _ in range(6)]
    grouped_adjust(one, one, one + 1, events, one, one + 1, Adjust.FORWARD, columns, columns)


def adjust_bars(frame: pl.DataFrame, weights: pl.DataFrame, adjust: Adjust) -> pl.DataFrame:
    """Adjust one code's bars (``BAR_SCHEMA``) for the events in ``weights`` (``WEIGHT_SCHEMA``).

    Returns a frame with the same columns and order as ``frame`` (sorted by datetime); with
    ``Adjust.NONE`` or no effective event in the bars' window the input is returned unchanged.
    """
    if adjust is Adjust.NONE or frame.height == 0 or weights.height == 0:
        return frame
    return adjust_with_events(frame, WeightEvents.from_frame(weights), adjust)


def adjust_with_events(frame: pl.DataFrame, events: WeightEvents, adjust: Adjust) -> pl.DataFrame:
    """:func:`adjust_bars` with the events already converted (reused by bulk loads)."""
    if adjust is Adjust.NONE or frame.height == 0 or len(events) == 0:
        return frame
    if not frame.get_column("datetime").is_sorted():
        frame = frame.sort("datetime")
    bar_ms = frame.get_column("datetime").cast(pl.Datetime("ms")).cast(pl.Int64).to_numpy()
    a, b = affine_coefficients(bar_ms, events, adjust)
    return apply_affine(frame, a, b)


def apply_affine(frame: pl.DataFrame, a: F64, b: F64) -> pl.DataFrame:
    """Apply per-row maps to a bars frame: prices ``a*P + b``, volume ``/a``, amount following
    ``close * volume`` (unchanged where the close is zero). Used for one code or a whole market."""
    a_s, b_s = pl.lit(pl.Series(a)), pl.lit(pl.Series(b))
    exprs: list[pl.Expr] = [(pl.col(c) * a_s + b_s).alias(c) for c in PRICE_COLUMNS if c in frame.columns]
    if "volume" in frame.columns:
        exprs.append((pl.col("volume") / a_s).alias("volume"))
    if "amount" in frame.columns and "close" in frame.columns:
        ratio = (pl.col("close") * a_s + b_s) / (pl.col("close") * a_s)
        amount = pl.when(pl.col("close") != 0).then(pl.col("amount") * ratio).otherwise(pl.col("amount"))
        exprs.append(amount.alias("amount"))
    return frame.with_columns(exprs)
