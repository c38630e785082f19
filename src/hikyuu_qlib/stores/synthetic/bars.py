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

import numpy as np
import polars as pl

from hikyuu_qlib.domain.schema import BAR_SCHEMA, WEIGHT_SCHEMA
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
    """The unadjusted day bars of every stock (``BAR_SCHEMA``, sorted by code and datetime).

    Works on the trading cells only, gathered in (stock, day) order into flat arrays.
    """
    n_days, n = paths.close.shape
    stock, day = np.nonzero(paths.trading.T)
    flat = day * n + stock
    size = len(flat)

    def cells(matrix: np.ndarray) -> np.ndarray:
        return np.asarray(matrix.reshape(-1)[flat])

    close, ref, vol, pending = cells(paths.close), cells(paths.ref), cells(paths.vol), cells(paths.pending)
    limit = uni.limits[stock]
    up = np.floor(ref * (1.0 + limit) * 100.0 + _EPS) / 100.0
    dn = np.ceil(ref * (1.0 - limit) * 100.0 - _EPS) / 100.0
    ret = np.log(close / ref)

    gap = 0.3 * ret + rng.standard_normal(size) * 0.3 * vol
    open_ = np.clip(np.round(ref * (1.0 + gap), 2), dn, up)
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = np.clip(np.round(top * (1.0 + np.abs(rng.standard_normal(size)) * 0.45 * vol), 2), top, up)
    low = np.clip(np.round(bottom * (1.0 - np.abs(rng.standard_normal(size)) * 0.45 * vol), 2), dn, bottom)
    low = np.maximum(low, 0.01)

    at_limit = ((close >= up - _EPS) & (pending > 0.0)) | ((close <= dn + _EPS) & (pending < 0.0))
    sealed = at_limit & (rng.random(size) < 0.7)
    open_ = np.where(sealed, close, open_)
    high = np.where(sealed, close, high)
    low = np.where(sealed, close, low)

    base = np.asarray(rng.normal(np.log(0.012), 0.5, size=n))[stock]
    noise = cells(ar1(rng, 0.7, (n_days, n))) * 0.35
    turnover = np.exp(base + 0.5 * np.abs(ret) / vol - GAMMA * cells(paths.quality) + noise - 0.6)
    turnover = np.where(sealed, turnover * 0.1, np.minimum(turnover, 0.5))
    volume = np.maximum(np.round(turnover * cells(free) / 100.0), 1.0) * 100.0
    vwap = (open_ + high + low + close) / 4.0 * (1.0 + rng.standard_normal(size) * 0.002)
    amount = np.round(np.clip(vwap, low, high) * volume, 2)

    frame = pl.DataFrame(
        {
            "code": pl.Series(uni.codes.tolist(), dtype=pl.String).gather(stock),
            "datetime": days.astype("datetime64[ms]")[day],
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "amount": amount,
        }
    )
    return frame.cast(BAR_SCHEMA)  # type: ignore[arg-type]


def build_weights(
    days: np.ndarray, uni: Universe, paths: Paths, total: np.ndarray, free: np.ndarray
) -> pl.DataFrame:
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
