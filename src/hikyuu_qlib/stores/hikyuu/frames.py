"""Hikyuu records to bars columns and frames (units: yuan, shares, yuan)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain.schema import BAR_SCHEMA, DATETIME
from hikyuu_qlib.stores.hikyuu.h5 import I64, ymdhm_to_ms

F64 = npt.NDArray[np.float64]

PRICE_DIVISOR = 1000.0  # prices are stored x1000; dividing gives the exact decimal (8700 -> 8.7)
AMOUNT_SCALE = 1000.0  # transAmount is thousands of yuan
LOT = 100.0  # transCount of stocks' day bars counts lots


class Columns:
    """Numpy columns of bars (one code or many) in natural units."""

    __slots__ = ("amount", "close", "datetime", "high", "low", "open", "volume")

    def __init__(self, datetime: I64, open_: F64, high: F64, low: F64, close: F64, volume: F64, amount: F64):
        self.datetime = datetime
        self.open = open_
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.amount = amount

    @classmethod
    def from_records(cls, rec: npt.NDArray[Any], *, volume_scale: float, where: str) -> Columns:
        return cls(
            ymdhm_to_ms(rec["datetime"], where=where),
            rec["openPrice"] / PRICE_DIVISOR,
            rec["highPrice"] / PRICE_DIVISOR,
            rec["lowPrice"] / PRICE_DIVISOR,
            rec["closePrice"] / PRICE_DIVISOR,
            rec["transCount"].astype(np.float64) * volume_scale,
            rec["transAmount"].astype(np.float64) * AMOUNT_SCALE,
        )

    def take(self, sel: slice | npt.NDArray[Any]) -> Columns:
        return Columns(
            self.datetime[sel],
            self.open[sel],
            self.high[sel],
            self.low[sel],
            self.close[sel],
            self.volume[sel],
            self.amount[sel],
        )

    def __len__(self) -> int:
        return int(self.datetime.shape[0])

    def frame(self, code: str | pl.Series) -> pl.DataFrame:
        n = len(self)
        code_col = code if isinstance(code, pl.Series) else pl.repeat(code, n, eager=True, dtype=pl.String)
        return pl.DataFrame(
            {
                "code": code_col.alias("code"),
                "datetime": pl.Series("datetime", self.datetime, dtype=pl.Int64).cast(DATETIME),
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": self.close,
                "volume": self.volume,
                "amount": self.amount,
            },
            schema=BAR_SCHEMA,
        )
