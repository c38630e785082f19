"""The bridge from bar stores to features: Qlib's raw fields computed from any market data store's bars.

:class:`BarsFeatureSource` is the :class:`~hikyuu_qlib.ports.FeatureSource` of every store that is not
one itself (Hikyuu, synthetic): the composition root (:func:`hikyuu_qlib.app.open_feature_source`) puts
it over such a store, and training, evaluation, prediction, the portfolio backtest, ``hq run`` and
``hq demo`` all read it. It reads the store directly: nothing is exported.

Prices, two conventions (``prices=``):

* ``"qlib"`` (default): Qlib's ``$price = traded price × $factor`` and ``$volume = traded shares /
  $factor``. The factor is the store's own (a Qlib store's ``factor`` column) or, when the store has
  none, the backward-adjustment ratio ``backward close / traded close`` of each bar, adjusted over the
  code's whole history (so ``$close`` is the store's backward-adjusted close, and a day's prices do not
  depend on the dates asked for).
* ``"backward"``: the store's backward-adjusted (后复权) bars as they come (volume adjusted with the
  prices, so price × volume is preserved); ``factor`` is not offered.

``$change`` is ``$close / previous $close - 1`` (a fraction) against the code's previous bar in the store
(the previous traded day, not the previous calendar day), so splits and dividends do not show as moves;
NaN on a code's first bar. ``$amount`` is the turnover and ``$vwap = $amount / $volume`` (an adjusted
price), offered when the store keeps turnover (see :meth:`BarsFeatureSource.fields`).

Rows follow Qlib's layout: each code has one row per trading day within the dates from its first to its
last bar in the store (as a Qlib bin spans a code's whole history), NaN where it did not trade; a code the
store lists without bars (or does not know) is absent.
A store with a batch reader (:class:`~hikyuu_qlib.ports.BatchBarReader`) is read in one columnar pass per
adjustment; any other store one code at a time on a few threads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import polars as pl

from hikyuu_qlib.domain import Adjust, DateRange, StockCode
from hikyuu_qlib.domain.errors import InvalidInputError, LoadErrors, NoBarsError, UnknownCodeError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.factors.alpha158 import sorted_by_code_date
from hikyuu_qlib.factors.grouped import group_starts
from hikyuu_qlib.ports import BatchBarReader, MarketData

log = logging.getLogger(__name__)

PriceMode = Literal["qlib", "backward"]
FIELDS = ("open", "high", "low", "close", "volume", "factor", "change", "amount", "vwap")
PRICES = ("open", "high", "low", "close")
BASE_FIELDS = frozenset(("open", "high", "low", "close", "volume", "change"))
TURNOVER_FIELDS = frozenset(("amount", "vwap"))
#: Bump when the fields computed from the same bars change, so that cached features recompute.
BRIDGE_VERSION = "bars-2"
_COLUMNS = ("code", "datetime", *PRICES, "volume", "amount", "factor")
_SCHEMA: dict[str, pl.DataType] = {
    c: pl.String() if c == "code" else DATETIME if c == "datetime" else pl.Float64() for c in _COLUMNS
}
_ABSENT = (NoBarsError, UnknownCodeError)  # like Qlib: an instrument without data is absent


def _field(name: str) -> str:
    key = name.strip().lstrip("$").lower()
    if key not in FIELDS:
        raise InvalidInputError(f"unsupported field {name!r}: expected one of {', '.join(FIELDS)}")
    return key


class BarsFeatureSource:
    """Qlib-style raw fields (``code, datetime, <field>…`` Float32) computed from a store's bars."""

    def __init__(self, store: MarketData, *, prices: PriceMode = "qlib", max_workers: int = 4) -> None:
        if prices not in ("qlib", "backward"):
            raise InvalidInputError(f"unknown price mode {prices!r}: expected qlib or backward")
        self.store = store
        self.prices: PriceMode = prices
        self.max_workers = max(1, max_workers)
        self._turnover: bool | None = None

    def __repr__(self) -> str:
        return f"BarsFeatureSource({self.store.source!r}, prices={self.prices!r})"

    @property
    def source(self) -> str:
        """The store's source spec: the features are those of that market."""
        return self.store.source

    def data_version(self) -> str:
        """The store's data version with this bridge's convention and version (cache keys of features
        computed here never meet those of another feature source over the same store)."""
        return f"{self.store.data_version()}+{BRIDGE_VERSION}-{self.prices}"

    def calendar(self, *, dates: DateRange | None = None) -> pl.Series:
        return self.store.calendar(dates=dates)

    def members(self, universe: str, dates: DateRange | None = None) -> pl.DataFrame:
        return self.store.members(universe, dates)

    def fields(self, codes: Sequence[str] | None = None) -> frozenset[str]:
        """``open, high, low, close, volume, change`` (and ``factor`` with ``prices="qlib"``) for codes
        with bars, plus ``amount`` and ``vwap`` when the store keeps turnover (told once, from the bars of
        the first code with data; codes without turnover serve NaN). Empty when none of ``codes`` (default:
        every code of the store) has bars."""
        listed = self.store.stocks(valid=None).filter(pl.col("has_data"))["code"]
        if codes is not None:
            listed = listed.filter(listed.is_in([str(StockCode.parse(c)) for c in codes]))
        if listed.is_empty():
            return frozenset()
        names = BASE_FIELDS | ({"factor"} if self.prices == "qlib" else set())
        if self._has_turnover(listed.sort().to_list()):
            names |= TURNOVER_FIELDS
        return frozenset(names)

    def data_spans(self) -> pl.DataFrame:
        """The codes the store holds bars for (:class:`~hikyuu_qlib.ports.DataSpans`); their first and last
        bars are not read (null spans)."""
        codes = self.store.stocks(valid=None).filter(pl.col("has_data")).get_column("code")
        return pl.DataFrame({"code": codes}).select(
            pl.col("code").cast(pl.String), *[pl.lit(None, DATETIME).alias(c) for c in ("start", "end")]
        )

    def features(
        self, codes: Sequence[str], fields: Sequence[str], dates: DateRange | None = None
    ) -> pl.DataFrame:
        """``code, datetime`` and the fields, Float32, sorted by code then datetime (see the module doc)."""
        wanted = [_field(f) for f in ([fields] if isinstance(fields, str) else fields)]
        if self.prices == "backward" and "factor" in wanted:
            raise InvalidInputError("field 'factor' needs prices='qlib'")
        names = sorted({str(StockCode.parse(c)) for c in codes})
        aligned = self._align(self._fields(self._load(names)), dates)
        return aligned.select(
            "code", "datetime", *[pl.col(f).cast(pl.Float32).fill_null(float("nan")) for f in wanted]
        )

    # --- internals -----------------------------------------------------------------------------------

    def _has_turnover(self, candidates: list[str]) -> bool:
        if self._turnover is None:
            for code in candidates:
                try:
                    bars = self.store.read_bars(StockCode.parse(code))
                except _ABSENT:
                    continue
                self._turnover = bool(bars.height and bars.get_column("amount").is_not_null().any())
                break
        return bool(self._turnover)

    def _load(self, codes: list[str]) -> pl.DataFrame:
        """Every code's whole history (``_COLUMNS``, Float64 values, sorted by code then datetime): traded
        prices with ``factor`` (``prices="qlib"``), or backward-adjusted prices."""
        if not codes:
            return pl.DataFrame(schema=_SCHEMA)
        adjust = Adjust.BACKWARD if self.prices == "backward" else Adjust.NONE
        if isinstance(self.store, BatchBarReader):
            bars = self._read_many(codes, adjust)
            if self.prices == "qlib" and "factor" not in bars.columns and bars.height:
                present = bars["code"].unique().sort().to_list()
                bars = _with_factor(bars, self._read_many(present, Adjust.BACKWARD))
        else:
            bars = self._read_each(codes)
        bars = _conform(bars)
        return bars if sorted_by_code_date(bars) else bars.sort("code", "datetime")

    def _read_many(self, codes: list[str], adjust: Adjust) -> pl.DataFrame:
        assert isinstance(self.store, BatchBarReader)
        frame, errors = self.store.read_many([StockCode.parse(c) for c in codes], adjust=adjust)
        failed = {code: err for code, err in errors.items() if not isinstance(err, _ABSENT)}
        if failed:
            raise LoadErrors(failed)
        return frame

    def _read_each(self, codes: list[str]) -> pl.DataFrame:
        errors: dict[str, BaseException] = {}
        parts: list[pl.DataFrame] = []

        def read(code: str) -> tuple[str, pl.DataFrame | None, BaseException | None]:
            try:
                return code, self._read_one(code), None
            except Exception as exc:  # collected and raised together
                return code, None, exc

        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="hq-bars") as pool:
            for code, frame, error in pool.map(read, codes):
                if error is not None:
                    errors[code] = error
                elif frame is not None and frame.height:
                    parts.append(_conform(frame))
        if errors:
            raise LoadErrors(errors)
        return pl.concat(parts) if parts else pl.DataFrame(schema=_SCHEMA)

    def _read_one(self, code: str) -> pl.DataFrame | None:
        stock = StockCode.parse(code)
        adjust = Adjust.BACKWARD if self.prices == "backward" else Adjust.NONE
        try:
            bars = self.store.read_bars(stock, adjust=adjust)
        except _ABSENT:
            return None
        if self.prices == "qlib" and "factor" not in bars.columns and bars.height:
            bars = _with_factor(bars, self.store.read_bars(stock, adjust=Adjust.BACKWARD))
        return bars

    def _fields(self, bars: pl.DataFrame) -> pl.DataFrame:
        """The adjusted fields of whole histories, with ``change`` against each code's previous bar."""
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
        vwap = pl.when(pl.col("volume") > 0).then(pl.col("amount") / pl.col("volume")).otherwise(None)
        change = pl.col("close") / pl.col("close").shift(1).over("code") - 1.0
        return frame.with_columns(vwap.alias("vwap"), change.alias("change"))

    def _align(self, frame: pl.DataFrame, dates: DateRange | None) -> pl.DataFrame:
        """Qlib's rows: for each code one row per trading day within ``dates`` from its first to its last bar
        in the store (NaN where it did not trade), as a Qlib bin spans a code's whole history. ``frame``
        holds whole histories sorted by code then datetime; bars on days off the calendar are dropped."""
        cal = self.store.calendar(dates=dates).cast(DATETIME).to_numpy().view(np.int64)
        if frame.is_empty() or not len(cal):
            return frame.clear()
        when = frame["datetime"].cast(DATETIME).to_numpy().view(np.int64)
        starts = group_starts(frame["code"])
        first, last = starts[:-1], starts[1:] - 1
        lo = np.searchsorted(cal, when[first], side="left")
        lengths = np.maximum(np.searchsorted(cal, when[last], side="right") - lo, 0)
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        group = np.repeat(np.arange(len(first)), np.diff(starts))
        pos = np.searchsorted(cal, when)
        placed = (pos < len(cal)) & (
            cal[np.minimum(pos, len(cal) - 1)] == when
        )  # in the dates, on the calendar
        target = (offsets[group] + pos - lo[group])[placed]
        total = int(offsets[-1])
        index = np.repeat(lo - offsets[:-1], lengths) + np.arange(total)
        columns: dict[str, pl.Series] = {
            "code": frame["code"].gather(first).gather(np.repeat(np.arange(len(first)), lengths)),
            "datetime": pl.Series(cal[index].view("datetime64[ms]")).cast(DATETIME),
        }
        for name in frame.columns[2:]:
            values = np.full(total, np.nan)
            values[target] = frame[name].cast(pl.Float64).to_numpy()[placed]
            columns[name] = pl.Series(values)
        return pl.DataFrame(columns)


def _with_factor(bars: pl.DataFrame, backward: pl.DataFrame) -> pl.DataFrame:
    """``bars`` (traded prices) with ``factor = backward close / traded close`` of each bar."""
    same_rows = bars.height == backward.height and all(
        bars[c].cast(t).equals(backward[c].cast(t)) for c, t in (("code", pl.String), ("datetime", DATETIME))
    )
    if same_rows:  # one batch read per adjustment: the same bars in the same order
        return bars.with_columns((backward["close"] / bars["close"]).alias("factor"))
    adjusted = backward.select("code", pl.col("datetime").cast(DATETIME), pl.col("close").alias("_adj"))
    return (
        bars.with_columns(pl.col("datetime").cast(DATETIME))
        .join(adjusted, on=["code", "datetime"], how="left")
        .with_columns((pl.col("_adj") / pl.col("close")).alias("factor"))
        .drop("_adj")
    )


def _conform(bars: pl.DataFrame) -> pl.DataFrame:
    """``_COLUMNS`` with their types (missing ones null)."""
    return bars.select(
        [(pl.col(c) if c in bars.columns else pl.lit(None)).cast(t).alias(c) for c, t in _SCHEMA.items()]
    )
