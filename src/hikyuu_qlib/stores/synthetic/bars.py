"""Open, high, low, volume and amount around the simulated closes; share counts and weight records.

* open: the reference price moved by a part of the day's return plus noise, within the limits;
* high/low: beyond max/min(open, close) by half-normal excursions scaled with the day's volatility,
  within the limits; a day that closes at a limit with return still owed is sealed all day with
  probability 0.7 (a one-price bar: open == high == low == close);
* volume: turnover of the free float ``exp(base_i + 0.5 |r| / vol - GAMMA * q + u)`` where ``u`` is an AR(1)
  noise, sealed days trade a tenth; shares in multiples of 100 (at least 100);
* amount: a VWAP inside [low, high] times the volume.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from hikyuu_qlib.domain.schema import BAR_SCHEMA, DATETIME, WEIGHT_SCHEMA
from hikyuu_qlib.stores.synthetic.prices import Paths, ar1
from hikyuu_qlib.stores.synthetic.universe import Universe

GAMMA = 0.6  # how strongly the latent quality lowers turnover
_EPS = 1e-7


def share_counts(rng: np.random.Generator, uni: Universe, paths: Paths) -> tuple[np.ndarray, np.ndarray]:
    """Total and free shares (days x stocks, in shares) after each day's bonus-share events."""
    n_days, n = paths.close.shape
    first_ref = paths.ref[uni.first_day, np.arange(n)]
    cap = np.clip(np.exp(rng.normal(np.log(8e9), 1.0, n)), 1e9, 5e11)
    total0 = np.round(cap / first_ref / 1e4) * 1e4
    free_ratio = rng.uniform(0.3, 1.0, n)
    growth = np.ones((n_days, n))
    ev = paths.events
    growth[ev.day, ev.stock] = 1.0 + (ev.gift + ev.increase) / 10.0
    total = total0 * np.cumprod(growth, axis=0)
    return total, np.round(total * free_ratio / 1e4) * 1e4


def build_bars(
    rng: np.random.Generator, days: np.ndarray, uni: Universe, paths: Paths, free: np.ndarray
) -> pl.DataFrame:
    """The unadjusted day bars of every stock (``BAR_SCHEMA``, sorted by code and datetime)."""
    shape = paths.close.shape
    close, ref, vol = paths.close, paths.ref, paths.vol
    up = np.floor(ref * (1.0 + uni.limits) * 100.0 + _EPS) / 100.0
    dn = np.ceil(ref * (1.0 - uni.limits) * 100.0 - _EPS) / 100.0
    ret = np.log(close / ref)

    gap = 0.3 * ret + rng.standard_normal(shape) * 0.3 * vol
    open_ = np.clip(np.round(ref * np.exp(gap), 2), dn, up)
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = np.clip(np.round(top * np.exp(np.abs(rng.standard_normal(shape)) * 0.45 * vol), 2), top, up)
    high = np.maximum(high, top)
    low = np.clip(np.round(bottom * np.exp(-np.abs(rng.standard_normal(shape)) * 0.45 * vol), 2), dn, bottom)
    low = np.maximum(np.minimum(low, bottom), 0.01)

    at_limit = ((close >= up - _EPS) & (paths.pending > 0.0)) | ((close <= dn + _EPS) & (paths.pending < 0.0))
    sealed = at_limit & (rng.random(shape) < 0.7)
    open_ = np.where(sealed, close, open_)
    high = np.where(sealed, close, high)
    low = np.where(sealed, close, low)

    base = rng.normal(np.log(0.012), 0.5, shape[1])
    noise = ar1(rng, 0.7, shape) * 0.35
    turnover = np.exp(base + 0.5 * np.abs(ret) / vol - GAMMA * paths.quality + noise - 0.6)
    turnover = np.where(sealed, turnover * 0.1, np.minimum(turnover, 0.5))
    volume = np.maximum(np.round(turnover * free / 100.0), 1.0) * 100.0
    vwap = (open_ + high + low + close) / 4.0 * np.exp(rng.standard_normal(shape) * 0.002)
    amount = np.round(np.clip(vwap, low, high) * volume, 2)

    mask = paths.trading.T
    n_bars = mask.sum(axis=1)
    stamps = days.astype("datetime64[ms]")
    day_idx = np.broadcast_to(np.arange(shape[0]), (shape[1], shape[0]))[mask]

    def cells(matrix: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(matrix.T[mask])

    frame = pl.DataFrame(
        {
            "code": np.repeat(uni.codes, n_bars),
            "datetime": stamps[day_idx],
            "open": cells(open_),
            "high": cells(high),
            "low": cells(low),
            "close": cells(close),
            "volume": cells(volume),
            "amount": cells(amount),
        }
    )
    return frame.cast(BAR_SCHEMA)  # type: ignore[arg-type]


def build_weights(days: np.ndarray, uni: Universe, paths: Paths, total: np.ndarray, free: np.ndarray) -> pl.DataFrame:
    """Weight records of every stock: ``code`` plus ``WEIGHT_SCHEMA``, sorted by code and date."""
    ev = paths.events
    zeros = np.zeros(len(ev.day))
    frame = pl.DataFrame(
        {
            "code": uni.codes[ev.stock],
            "date": days[ev.day].astype("datetime64[ms]"),
            "count_as_gift": ev.gift,
            "count_for_sell": zeros,
            "price_for_sell": zeros,
            "bonus": ev.bonus,
            "count_of_increasement": ev.increase,
            "suogu": zeros,
            "total_count": total[ev.day, ev.stock] / 1e4,
            "free_count": free[ev.day, ev.stock] / 1e4,
        }
    )
    schema: dict[str, pl.DataType] = {"code": pl.String(), **WEIGHT_SCHEMA}
    return frame.cast(schema).sort("code", "date")  # type: ignore[arg-type]


def as_datetime(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day)


__all__ = ["DATETIME", "as_datetime", "build_bars", "build_weights", "share_counts"]
