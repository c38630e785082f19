"""Qlib-style fields from any market data store, so that Alpha158 runs on Hikyuu and synthetic stores.

:class:`BarsFeatureSource` offers what the factor pipeline needs (``features``, ``calendar``, ``source``,
``data_version``, and ``members`` for universes) over a :class:`~hikyuu_qlib.ports.MarketData` store.

Prices, two conventions (``prices=``):

* ``"qlib"`` (default): Qlib's ``$price = original × $factor`` and ``$volume = original / $factor``. The
  factor is the store's own (a Qlib store's ``factor`` column) or, when the store has none, the
  backward-adjustment ratio ``backward close / original close`` (so prices are backward-adjusted).
* ``"backward"``: the store's backward-adjusted (后复权) bars as they come (volume adjusted with the
  prices, so price × volume is preserved); ``factor`` is not offered.

``$vwap = amount / $volume`` where the store has amounts (NaN elsewhere), which is the adjusted VWAP in
both conventions. Because the pipeline asks for ``vwap`` only from Qlib provider directories,
``auto_vwap`` (default on) adds it whenever amounts exist. Rows follow Qlib's layout: each code has one
row per trading day from its first to its last bar within the dates, NaN where it did not trade.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, cast

import numpy as np
import polars as pl

from hikyuu_qlib.domain import Adjust, DateRange, StockCode
from hikyuu_qlib.domain.errors import InvalidInputError, LoadErrors, NoBarsError, UnknownCodeError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.factors.pipeline import FeatureStore
from hikyuu_qlib.ports import MarketData

log = logging.getLogger(__name__)

PriceMode = Literal["qlib", "backward"]
FIELDS = ("open", "high", "low", "close", "volume", "amount", "vwap", "factor")
PRICES = ("open", "high", "low", "close")


def _field(name: str) -> str:
    key = name.strip().lstrip("$").lower()
    if key not in FIELDS:
        raise InvalidInputError(f"unsupported field {name!r}: expected one of {', '.join(FIELDS)}")
    return key


class BarsFeatureSource:
    """Qlib-style raw fields (``code, datetime, <field>…`` Float32) computed from a store's bars."""

    def __init__(
        self, store: MarketData, *, prices: PriceMode = "qlib", auto_vwap: bool = True, max_workers: int = 4
    ) -> None:
        if prices not in ("qlib", "backward"):
            raise InvalidInputError(f"unknown price mode {prices!r}: expected qlib or backward")
        self.store = store
        self.prices: PriceMode = prices
        self.auto_vwap = auto_vwap
        self.max_workers = max(1, max_workers)

    @property
    def source(self) -> str:
        return f"bars-{self.prices}+{self.store.source}"

    def data_version(self) -> str:
        return self.store.data_version()

    def calendar(self, *, dates: DateRange | None = None) -> pl.Series:
        return self.store.calendar(dates=dates)

    def members(self, universe: str, dates: DateRange | None = None) -> pl.DataFrame:
        return self.store.members(universe, dates)

    def features(
        self, instruments: str | Sequence[str], fields: Sequence[str], dates: DateRange | None = None
    ) -> pl.DataFrame:
        """``code, datetime`` and the fields, Float32, sorted by code then datetime."""
        wanted = [_field(f) for f in ([fields] if isinstance(fields, str) else fields)]
        if self.prices == "backward" and "factor" in wanted:
            raise InvalidInputError("field 'factor' needs prices='qlib'")
        if isinstance(instruments, str):
            codes = sorted(set(self.store.members(instruments, dates)["code"].to_list()))
        else:
            codes = sorted({str(StockCode.parse(c)) for c in instruments})
        bars = self._load(codes, dates)
        out = self._fields(bars)
        if self.auto_vwap and "vwap" not in wanted and bars.get_column("amount").is_not_null().any():
            wanted.append("vwap")
        aligned = self._align(out, dates)
        return aligned.select(
            "code", "datetime", *[pl.col(f).cast(pl.Float32).fill_null(float("nan")) for f in wanted]
        )

    # --- internals -----------------------------------------------------------------------------------

    def _read(self, code: str, dates: DateRange | None) -> pl.DataFrame | None:
        """One code's bars within ``dates``; adjusted over its whole history, so that the prices and the
        factor of a day do not depend on the window asked for."""
        stock = StockCode.parse(code)
        adjust = Adjust.BACKWARD if self.prices == "backward" else Adjust.NONE
        try:
            bars = self.store.read_bars(stock, adjust=adjust)
        except (UnknownCodeError, NoBarsError):
            return None  # like Qlib: an instrument without data is absent
        if self.prices == "qlib" and "factor" not in bars.columns and bars.height:
            backward = self.store.read_bars(stock, adjust=Adjust.BACKWARD)
            adjusted = backward.select("datetime", pl.col("close").alias("_adj"))
            bars = (
                bars.join(adjusted, on="datetime", how="left")
                .with_columns((pl.col("_adj") / pl.col("close")).alias("factor"))
                .drop("_adj")
            )
        if dates is not None:
            bars = bars.filter(pl.col("datetime").is_between(dates.start, dates.end))
        return bars

    def _load(self, codes: list[str], dates: DateRange | None) -> pl.DataFrame:
        errors: dict[str, BaseException] = {}
        parts: list[pl.DataFrame] = []

        def read(code: str) -> tuple[str, pl.DataFrame | None, BaseException | None]:
            try:
                return code, self._read(code, dates), None
            except Exception as exc:  # collected and raised together
                return code, None, exc

        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="hq-bars") as pool:
            for code, frame, error in pool.map(read, codes):
                if error is not None:
                    errors[code] = error
                elif frame is not None and frame.height:
                    parts.append(frame)
        if errors:
            raise LoadErrors(errors)
        columns = ["code", "datetime", *PRICES, "volume", "amount", "factor"]
        conformed = [
            p.select(
                [
                    (pl.col(c) if c in p.columns else pl.lit(None))
                    .cast(pl.String if c == "code" else DATETIME if c == "datetime" else pl.Float64)
                    .alias(c)
                    for c in columns
                ]
            )
            for p in parts
        ]
        if not conformed:
            return pl.DataFrame(
                schema={
                    c: pl.String if c == "code" else DATETIME if c == "datetime" else pl.Float64
                    for c in columns
                }
            )
        return pl.concat(conformed)

    def _fields(self, bars: pl.DataFrame) -> pl.DataFrame:
        if self.prices == "qlib":
            factor = pl.col("factor").fill_null(1.0)
            prices = [(pl.col(p) * factor).alias(p) for p in PRICES]
            volume = pl.col("volume") / factor
        else:
            factor = pl.lit(None, pl.Float64)
            prices = [pl.col(p) for p in PRICES]
            volume = pl.col("volume")
        frame = bars.select(
            "code", "datetime", *prices, volume.alias("volume"), "amount", factor.alias("factor")
        )
        vwap = pl.col("amount") / pl.col("volume")
        return frame.with_columns(pl.when(pl.col("volume") > 0).then(vwap).otherwise(None).alias("vwap"))

    def _align(self, frame: pl.DataFrame, dates: DateRange | None) -> pl.DataFrame:
        """One row per trading day from each code's first to last bar (Qlib's layout)."""
        if frame.is_empty():
            return frame
        cal = self.store.calendar(dates=dates).cast(DATETIME).to_numpy()
        spans = (
            frame.group_by("code")
            .agg(pl.col("datetime").min().alias("lo"), pl.col("datetime").max().alias("hi"))
            .sort("code")
        )
        lo = np.searchsorted(cal, spans["lo"].to_numpy(), side="left")
        hi = np.searchsorted(cal, spans["hi"].to_numpy(), side="right")
        lengths = np.maximum(hi - lo, 0)
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        index = starts + np.arange(int(lengths.sum()))
        grid = pl.DataFrame(
            {
                "code": spans["code"].gather(np.repeat(np.arange(spans.height), lengths)),
                "datetime": pl.Series(cal[index]).cast(DATETIME),
            }
        )
        return grid.join(frame, on=["code", "datetime"], how="left").sort("code", "datetime")


def as_feature_source(store: MarketData, prices: PriceMode = "qlib") -> FeatureStore:
    """The store itself when it serves Qlib fields (a Qlib store), else a :class:`BarsFeatureSource`."""
    if callable(getattr(store, "features", None)):
        return cast(FeatureStore, store)
    return BarsFeatureSource(store, prices=prices)


def origin_source(store: object) -> str:
    """The source spec of the store behind a feature source (what ``open_store`` takes back)."""
    inner = store.store if isinstance(store, BarsFeatureSource) else store
    return str(getattr(inner, "source", ""))
