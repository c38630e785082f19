"""A-share exchange rules as day × stock arrays: suspensions, price limits, deal prices.

Qlib's rules (``qlib.backtest.exchange.Exchange``), reproduced:

* a stock is suspended on a day when its ``$close`` is NaN (or it has no row): it cannot trade and a held
  position keeps its last price;
* limit up when ``$change >= threshold``, limit down when ``$change <= -threshold`` (NaN change: no
  limit); a suspended stock is limited both ways. ``$change`` and the threshold are fractions (0.095 is
  9.5 %): a :class:`~hikyuu_qlib.ports.FeatureSource` serves ``$change`` as a fraction in any store;
* the deal price is ``$close`` or ``$open``; a NaN or non-positive deal price falls back to ``$close``.

When the store has no ``$change``, :func:`board_limits` derives the day's change from ``$close`` and
applies the board's limit instead of one threshold: 10 % for the main boards (threshold 0.095),
20 % for STAR (SH688, 0.195) and for ChiNext (SZ300–SZ301) from 2020-08-24 (before: 10 %), 30 % for the
Beijing exchange (BJ, 0.295). ST stocks (5 %) are not known to a Qlib store and get their board's limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

CHINEXT_REFORM = np.datetime64("2020-08-24", "ms")
MAIN_THRESHOLD = 0.095
WIDE_THRESHOLD = 0.195
BSE_THRESHOLD = 0.295


def board_thresholds(codes: Sequence[str], dates: npt.NDArray[np.datetime64]) -> F64:
    """Limit thresholds (day × stock) of each code's board on each day."""
    out = np.full((len(dates), len(codes)), MAIN_THRESHOLD)
    after_reform = dates.astype("datetime64[ms]") >= CHINEXT_REFORM
    for j, code in enumerate(codes):
        upper = code.upper()
        if upper.startswith("SH688"):
            out[:, j] = WIDE_THRESHOLD
        elif upper.startswith(("SZ300", "SZ301")):
            out[after_reform, j] = WIDE_THRESHOLD
        elif upper.startswith("BJ"):
            out[:, j] = BSE_THRESHOLD
    return out


def close_change(close: F64, prev_close: F64) -> F64:
    """Day-over-day change of ``close`` (day × stock); ``prev_close`` is the row before the first day."""
    before = np.vstack([prev_close[None, :], close[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        return close / before - 1.0


def suspended(close: F64, volume: F64, zero_volume: bool) -> Bool:
    """Qlib's suspension (NaN close); with ``zero_volume`` also days without volume (stores that
    carry the last close through a suspension, as this project's Qlib data does)."""
    out = np.isnan(close)
    if zero_volume:
        out |= volume == 0.0
    return out


def limit_flags(change: F64, halted: Bool, threshold: float | F64 | None) -> tuple[Bool, Bool]:
    """``(no_buy, no_sell)``: limit up or ``halted``, limit down or ``halted`` (Qlib's ``limit_buy/sell``)."""
    if threshold is None:
        return halted.copy(), halted.copy()
    with np.errstate(invalid="ignore"):
        up = change >= threshold
        down = change <= -np.asarray(threshold)
    return up | halted, down | halted


def deal_prices(price: F64, close: F64) -> F64:
    """The deal price, falling back to ``close`` where ``price`` is NaN or not positive (as Qlib does)."""
    with np.errstate(invalid="ignore"):
        bad = np.isnan(price) | (price <= 1e-8)
    return np.where(bad, close, price)
