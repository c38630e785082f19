"""``SyntheticStore``: the embedded, seeded market behind ``synthetic[:SEED]`` sources.

The market is generated on first use (under a lock) and kept in the instance; the same
:class:`SyntheticParams` always give identical frames. Generator changes that alter the data must bump
:data:`GENERATOR_VERSION` (it is part of :meth:`SyntheticStore.data_version`).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from hikyuu_qlib.domain import (
    Adjust,
    DateRange,
    InvalidInputError,
    KType,
    Market,
    NotFoundError,
    StockCode,
    StockType,
    UnknownCodeError,
    UnsupportedKTypeError,
)
from hikyuu_qlib.domain.schema import DATETIME, STOCK_SCHEMA, WEIGHT_SCHEMA
from hikyuu_qlib.stores.hikyuu.adjust import WeightEvents, adjust_bars, affine_coefficients, apply_affine
from hikyuu_qlib.stores.source import SourceSpec, SyntheticParams
from hikyuu_qlib.stores.synthetic.bars import build_bars, build_weights, share_counts
from hikyuu_qlib.stores.synthetic.calendar import trading_days
from hikyuu_qlib.stores.synthetic.index import INDEX_CODE, index_bars, index_stock
from hikyuu_qlib.stores.synthetic.members import INDEX_SIZES, UNIVERSES, all_spans, index_spans
from hikyuu_qlib.stores.synthetic.periods import aggregate, period_label
from hikyuu_qlib.stores.synthetic.prices import simulate_closes
from hikyuu_qlib.stores.synthetic.universe import make_universe

GENERATOR_VERSION = "3"
KTYPES: frozenset[KType] = frozenset(
    {KType.DAY, KType.WEEK, KType.MONTH, KType.QUARTER, KType.HALFYEAR, KType.YEAR}
)
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Market:
    days: np.ndarray  # datetime64[D]
    stocks: pl.DataFrame
    bars: pl.DataFrame  # unadjusted day bars, sorted by code and datetime
    slices: dict[str, tuple[int, int]]  # code -> (offset, length) in bars
    weights: pl.DataFrame  # code + WEIGHT_SCHEMA
    members: dict[str, pl.DataFrame]


def generate(params: SyntheticParams) -> _Market:
    """Generate the whole market of ``params`` (deterministic)."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([params.seed, 0x51C]).spawn(4)]
    days = trading_days(params.start, params.years)
    if len(days) < 2:
        raise InvalidInputError(
            f"synthetic span of {params.years} year(s) from {params.start} has no trading days"
        )
    uni = make_universe(streams[0], params.stocks, days)
    paths = simulate_closes(streams[1], days, uni)
    total, free = share_counts(streams[2], uni, paths)
    bars = build_bars(streams[3], days, uni, paths, free)
    weights = build_weights(days, uni, paths, total, free)

    end_dates = np.where(uni.delisted, days[uni.last_day], np.datetime64("NaT"))
    stocks = pl.DataFrame(
        {
            "code": uni.codes,
            "market": uni.markets,
            "symbol": uni.symbols,
            "name": uni.names,
            "type": uni.types,
            "valid": ~uni.delisted,
            "start_date": uni.start_dates,
            "end_date": end_dates.astype("datetime64[D]"),
            "lot": np.where(uni.types == int(StockType.STAR), 200, 100),
            "tick": np.full(uni.n, 0.01),
            "has_data": np.ones(uni.n, dtype=bool),  # every synthetic stock has bars
        }
    ).cast(STOCK_SCHEMA)  # type: ignore[arg-type]
    # the equal-weight index sorts before every stock code (SH000001 < SH6…, SZ…)
    stocks = pl.concat([index_stock(days), stocks])
    bars = pl.concat([index_bars(days, paths, bars), bars])
    codes = [INDEX_CODE, *uni.codes.tolist()]
    counts = np.concatenate([[len(days)], paths.trading.sum(axis=0)])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slices = {str(c): (int(o), int(k)) for c, o, k in zip(codes, offsets, counts, strict=True)}
    members = {"all": all_spans(days, uni, paths.trading)}
    members.update(index_spans(days, uni, paths.ref, total, INDEX_SIZES))
    return _Market(days, stocks, bars, slices, weights, members)


class SyntheticStore:
    """A deterministic synthetic A-share market implementing the ``MarketData`` port.

    See :mod:`hikyuu_qlib.stores.synthetic` for the model. ``stocks`` of ``params`` stocks over
    ``years`` years from ``start``, and the equal-weight index ``SH000001`` (:mod:`.index`), its
    benchmark; universes ``all``, ``csi100`` and ``csi300`` (of stocks only).
    """

    def __init__(self, params: SyntheticParams | None = None) -> None:
        self._params = params or SyntheticParams()
        self._lock = threading.Lock()
        self._market: _Market | None = None
        self._adjusted: dict[Adjust, pl.DataFrame] = {}

    @property
    def params(self) -> SyntheticParams:
        return self._params

    @property
    def source(self) -> str:
        return str(SourceSpec("synthetic", None, self._params))

    def data_version(self) -> str:
        p = self._params
        text = f"synthetic/{GENERATOR_VERSION}/{p.seed}/{p.stocks}/{p.years}/{p.start.isoformat()}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _data(self) -> _Market:
        market = self._market
        if market is not None:
            return market
        with self._lock:
            if self._market is None:
                began = time.perf_counter()
                self._market = generate(self._params)
                _log.info(
                    "generated synthetic market",
                    extra={
                        "source": self.source,
                        "bars": self._market.bars.height,
                        "seconds": round(time.perf_counter() - began, 3),
                    },
                )
            return self._market

    def markets(self) -> list[Market]:
        return [Market.SH, Market.SZ]

    def ktypes(self) -> frozenset[KType]:
        return KTYPES

    def _check_ktype(self, ktype: KType) -> None:
        if ktype not in KTYPES:
            names = ", ".join(sorted(k.value for k in KTYPES))
            raise UnsupportedKTypeError(f"the synthetic store has no {ktype.value!r} bars (it has {names})")

    def stocks(
        self,
        *,
        market: Market | None = None,
        types: Sequence[StockType] | None = None,
        valid: bool | None = True,
    ) -> pl.DataFrame:
        frame = self._data().stocks
        if market is not None:
            frame = frame.filter(pl.col("market") == market.value)
        if types is not None:
            frame = frame.filter(pl.col("type").is_in([int(t) for t in types]))
        if valid is not None:
            frame = frame.filter(pl.col("valid") == valid)
        return frame

    def calendar(self, *, ktype: KType = KType.DAY, dates: DateRange | None = None) -> pl.Series:
        self._check_ktype(ktype)
        days = pl.Series("datetime", self._data().days.astype("datetime64[ms]")).cast(DATETIME)
        if ktype is not KType.DAY:
            days = (
                days.to_frame()
                .select(period_label(pl.col("datetime"), ktype))
                .to_series()
                .unique(maintain_order=True)
            )
        if dates is not None:
            days = days.filter((days >= dates.start) & (days <= dates.end))
        return days

    def members(self, universe: str, dates: DateRange | None = None) -> pl.DataFrame:
        key = universe.strip().lower()
        spans = self._data().members.get(key)
        if spans is None:
            raise NotFoundError(  # as the Hikyuu and Qlib stores: a universe that does not exist
                f"unknown universe {universe!r}: the synthetic store has {', '.join(UNIVERSES)}"
            )
        if dates is not None:
            spans = spans.filter((pl.col("start") <= dates.end) & (pl.col("end") >= dates.start))
        return spans

    def _code(self, code: StockCode | str) -> str:
        text = str(StockCode.parse(code))
        if text not in self._data().slices:
            raise UnknownCodeError(f"unknown code {text!r}: not in the synthetic market {self.source}")
        return text

    def read_bars(
        self,
        code: StockCode | str,
        *,
        ktype: KType = KType.DAY,
        adjust: Adjust = Adjust.NONE,
        dates: DateRange | None = None,
    ) -> pl.DataFrame:
        """Bars of one code; period bars are built from the day bars of the periods whose end label
        falls in ``dates`` (whole periods), adjusted relative to the bars read as Hikyuu does."""
        self._check_ktype(ktype)
        key = self._code(code)
        market = self._data()
        offset, length = market.slices[key]
        bars = market.bars.slice(offset, length)
        if dates is not None:
            stamp = pl.col("datetime") if ktype is KType.DAY else period_label(pl.col("datetime"), ktype)
            bars = bars.filter(stamp.is_between(dates.start, dates.end))
        if adjust is not Adjust.NONE:
            bars = adjust_bars(bars, self.weights(key), adjust)
        return aggregate(bars, ktype)

    def weights(self, code: StockCode | str) -> pl.DataFrame:
        key = self._code(code)
        return self._data().weights.filter(pl.col("code") == key).select(list(WEIGHT_SCHEMA))

    def all_weights(self) -> pl.DataFrame:
        """Every code's weight records in one frame: ``code`` plus ``WEIGHT_SCHEMA``, by code and date."""
        return self._data().weights

    def frame(self, adjust: Adjust = Adjust.NONE) -> pl.DataFrame:
        """Every stock's day bars in one frame (``BAR_SCHEMA``, sorted by code and datetime)."""
        market = self._data()
        if adjust is Adjust.NONE:
            return market.bars
        with self._lock:
            cached = self._adjusted.get(adjust)
            if cached is None:
                cached = _adjust_all(market, adjust)
                self._adjusted[adjust] = cached
            return cached

    def close(self) -> None:
        with self._lock:
            self._market = None
            self._adjusted.clear()


def _adjust_all(market: _Market, adjust: Adjust) -> pl.DataFrame:
    """All codes adjusted at once: Hikyuu's per-bar affine maps (from the shared adjust module) per code,
    then one vectorised pass (:func:`~hikyuu_qlib.stores.hikyuu.adjust.apply_affine`)."""
    bars = market.bars
    bar_ms = bars.get_column("datetime").cast(pl.Int64).to_numpy()
    a = np.ones(bars.height)
    b = np.zeros(bars.height)
    w = market.weights
    w_codes = w.get_column("code").to_numpy()
    cols = {c: w.get_column(c).to_numpy() for c in WEIGHT_SCHEMA if c != "date"}
    w_ms = w.get_column("date").cast(pl.Int64).to_numpy()
    bounds = np.flatnonzero(np.r_[True, w_codes[1:] != w_codes[:-1], True]) if w.height else np.zeros(1, int)
    for lo, hi in itertools.pairwise(bounds):
        offset, length = market.slices[str(w_codes[lo])]
        part = slice(lo, hi)
        events = WeightEvents.from_arrays(
            w_ms[part],
            cols["count_as_gift"][part],
            cols["count_for_sell"][part],
            cols["price_for_sell"][part],
            cols["bonus"][part],
            cols["count_of_increasement"][part],
            cols["suogu"][part],
        )
        rows = slice(offset, offset + length)
        a[rows], b[rows] = affine_coefficients(bar_ms[rows], events, adjust)
    return apply_affine(bars, a, b)
