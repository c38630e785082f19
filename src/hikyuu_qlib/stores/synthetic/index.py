"""The synthetic market's index: an equal-weight index of every stock, the market's benchmark.

``SH000001`` (type index, listed from the first day) moves each day by the mean, over the stocks
trading that day, of their return against the day's reference price (the previous close, or the
ex-right price on an ex-date, so dividends and bonus shares do not show as falls; a suspended stock
counts on the day it trades again). Its open, high and low are the same means of the stocks' open,
high and low against their reference prices (high and low bounding open and close); its volume and
amount are the market's totals. It starts at 1000 and belongs to no universe (membership is untouched).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hikyuu_qlib.domain import StockType
from hikyuu_qlib.domain.schema import BAR_SCHEMA, STOCK_SCHEMA
from hikyuu_qlib.stores.synthetic.prices import Paths

INDEX_CODE = "SH000001"
INDEX_NAME = "合成等权指数"  # synthetic equal-weight index
BASE_LEVEL = 1000.0


def index_stock(days: np.ndarray) -> pl.DataFrame:
    """The index's row of the stock list (``STOCK_SCHEMA``)."""
    frame = pl.DataFrame(
        {
            "code": [INDEX_CODE],
            "market": [INDEX_CODE[:2]],
            "symbol": [INDEX_CODE[2:]],
            "name": [INDEX_NAME],
            "type": [int(StockType.INDEX)],
            "valid": [True],
            "start_date": days[:1].astype("datetime64[D]"),
            "end_date": np.array(["NaT"], dtype="datetime64[D]"),
            "lot": [100],
            "tick": [0.01],
            "has_data": [True],
        }
    )
    return frame.cast(STOCK_SCHEMA)  # type: ignore[arg-type]


def _daily_mean(day: np.ndarray, values: np.ndarray, n_days: int) -> np.ndarray:
    count = np.bincount(day, minlength=n_days)
    total = np.bincount(day, weights=values, minlength=n_days)
    return np.divide(total, count, out=np.zeros(n_days), where=count > 0)


def index_bars(days: np.ndarray, paths: Paths, bars: pl.DataFrame) -> pl.DataFrame:
    """The index's day bars (``BAR_SCHEMA``) from the stocks' ``bars`` (built in the (stock, day) order
    of ``paths.trading``, as :func:`~hikyuu_qlib.stores.synthetic.bars.build_bars` builds them)."""
    n_days = len(days)
    stock, day = np.nonzero(paths.trading.T)
    ref = paths.ref[day, stock]

    def mean_return(column: str) -> np.ndarray:
        return _daily_mean(day, bars[column].to_numpy() / ref - 1.0, n_days)

    close = BASE_LEVEL * np.cumprod(1.0 + mean_return("close"))
    previous = np.concatenate([[BASE_LEVEL], close[:-1]])
    open_ = previous * (1.0 + mean_return("open"))
    high = np.maximum.reduce([previous * (1.0 + mean_return("high")), open_, close])
    low = np.minimum.reduce([previous * (1.0 + mean_return("low")), open_, close])
    volume = np.bincount(day, weights=bars["volume"].to_numpy(), minlength=n_days)
    amount = np.bincount(day, weights=bars["amount"].to_numpy(), minlength=n_days)
    frame = pl.DataFrame(
        {
            "code": [INDEX_CODE] * n_days,
            "datetime": days.astype("datetime64[ms]"),
            "open": np.round(open_, 2),
            "high": np.round(high, 2),
            "low": np.round(low, 2),
            "close": np.round(close, 2),
            "volume": volume,
            "amount": np.round(amount, 2),
        }
    )
    return frame.cast(BAR_SCHEMA)  # type: ignore[arg-type]
