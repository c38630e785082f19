"""The trading system: load bars, evaluate the signal columnar, run the compiled kernel, shape results."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from hikyuu_qlib.backtest.system import kernel
from hikyuu_qlib.backtest.system.config import (
    CostModel,
    FixedCount,
    FixedPercent,
    FixedRisk,
    MoneyManager,
    Signal,
    Slippage,
    StopLoss,
    TakeProfit,
)
from hikyuu_qlib.backtest.system.signals import add_signals
from hikyuu_qlib.backtest.system.statistics import round_trip_statistics, system_statistics
from hikyuu_qlib.domain import Adjust, DateRange, InvalidInputError, KType, StockCode, UnknownCodeError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.ports import MarketData

log = logging.getLogger(__name__)

Fill = Literal["next_open", "close"]

TRADE_SCHEMA: dict[str, pl.DataType] = {
    "code": pl.String(),
    "entry_date": DATETIME,
    "entry_price": pl.Float64(),
    "exit_date": DATETIME,
    "exit_price": pl.Float64(),
    "shares": pl.Float64(),
    "pnl": pl.Float64(),
    "cost": pl.Float64(),
    "income": pl.Float64(),
    "reason": pl.String(),
    "cash_share": pl.Float64(),
}
"""Closed round trips. ``pnl`` is net of both sides' costs and includes cash bonuses (``income``)
received while held; ``shares`` is the number sold (gift shares included); prices include slippage.
``cash_share`` is the share of the account's cash just before the buy that the buy took: (its amount +
its costs) / that cash (Hikyuu's 占用现金比例 of a buy; it depends on the whole account, not on the
code alone)."""

POSITION_SCHEMA: dict[str, pl.DataType] = {
    "code": pl.String(),
    "entry_date": DATETIME,
    "entry_price": pl.Float64(),
    "shares": pl.Float64(),
    "last_close": pl.Float64(),
    "stop_price": pl.Float64(),
    "target_price": pl.Float64(),
    "cost": pl.Float64(),
    "income": pl.Float64(),
    "cash_share": pl.Float64(),
}
"""Positions still open at the end; ``cost`` is the buy's, ``cash_share`` as in ``TRADE_SCHEMA``."""


@dataclass(frozen=True, slots=True)
class SystemResult:
    """What a run produced.

    ``daily``: one row per trading date, with the portfolio engine's columns — datetime, return (gross
    of costs, on the previous account), cost and turnover (costs and traded amount over the previous
    account), bench_return (null without a benchmark), account (stock_value + cash), stock_value (the
    positions at their last close), cash, holdings (number of codes held). ``trades``: closed round
    trips, see ``TRADE_SCHEMA``. ``positions``: still open at the end (``POSITION_SCHEMA``).
    """

    daily: pl.DataFrame
    trades: pl.DataFrame
    positions: pl.DataFrame
    init_cash: float
    bars: pl.DataFrame = field(repr=False)
    stop_pct: float | None = None
    benchmark: str | None = None

    def trades_of(self, code: str | StockCode) -> pl.DataFrame:
        return self.trades.filter(pl.col("code") == str(StockCode.parse(code)))

    def statistics(self, risk_free: pl.DataFrame | None = None) -> dict[str, Any]:
        """The backtest package's statistics document (:mod:`hikyuu_qlib.backtest.measures`)."""
        return system_statistics(
            self.daily,
            self.trades,
            self.positions,
            risk_free,
            init_cash=self.init_cash,
            stop_pct=self.stop_pct,
            benchmark=self.benchmark,
        )

    def trade_statistics(self) -> dict[str, Any]:
        """Hikyuu-style round-trip statistics (win rate, average win/loss, runs, holding days …)."""
        return round_trip_statistics(self.trades)


@dataclass(frozen=True, slots=True)
class TradingSystem:
    """A Hikyuu-style system: signal, money manager, optional stop loss / take profit / slippage, costs.

    Orders decided on bar ``t``'s close fill at bar ``t + 1``'s open (``fill="next_open"``, Hikyuu's
    delay) or at bar ``t``'s close (``fill="close"``). One long position per code at most; all codes
    share one cash account of ``init_cash`` yuan. Lot sizes come from the store's stock list.
    """

    signal: Signal
    mm: MoneyManager
    stop_loss: StopLoss | None = None
    take_profit: TakeProfit | None = None
    slippage: Slippage | None = None
    cost: CostModel = field(default_factory=CostModel)
    init_cash: float = 100_000.0
    fill: Fill = "next_open"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.init_cash) and self.init_cash > 0):
            raise InvalidInputError(f"init_cash must be a positive amount of yuan, got {self.init_cash!r}")
        if self.fill not in ("next_open", "close"):
            raise InvalidInputError(f"fill must be 'next_open' or 'close', got {self.fill!r}")
        if isinstance(self.mm, FixedRisk) and self.stop_loss is None:
            raise InvalidInputError("FixedRisk sizes positions from the stop distance: give a stop_loss")
        if not isinstance(self.mm, FixedCount | FixedPercent | FixedRisk):
            raise InvalidInputError(f"unknown money manager {self.mm!r}")

    def run(
        self,
        store: MarketData,
        codes: str | StockCode | Sequence[str | StockCode],
        dates: DateRange,
        *,
        adjust: Adjust = Adjust.NONE,
        benchmark: str | StockCode | None = None,
    ) -> SystemResult:
        """Backtest ``codes`` over ``dates``; with ``adjust=NONE`` ex-date gifts and bonuses are paid in."""
        code_list = _codes(codes)
        lots, is_sh = _lots(store, code_list)
        frames = [store.read_bars(c, ktype=KType.DAY, adjust=adjust, dates=dates) for c in code_list]
        bars = add_signals(pl.concat(frames, how="vertical_relaxed").sort("code", "datetime"), self.signal)
        cal = store.calendar(ktype=KType.DAY, dates=dates)
        if cal.len() == 0:
            raise InvalidInputError(f"no trading dates in {dates} in {store.source}")
        grid = _Grid(cal, code_list)
        gift, bonus = grid.events(store, adjust, bars)
        costs = np.array(
            [
                self.cost.commission,
                self.cost.min_commission,
                self.cost.stamp_tax,
                self.cost.transfer_fee,
                self.cost.min_transfer_fee,
            ]
        )
        mm_kind, mm_value = _mm(self.mm)
        cash, value, cost, traded, held, t_int, t_flt, st, ints = kernel.run_grid(
            grid.floats(bars, "open"),
            grid.floats(bars, "high"),
            grid.floats(bars, "low"),
            grid.floats(bars, "close"),
            grid.flags(bars, "buy"),
            grid.flags(bars, "sell"),
            gift,
            bonus,
            lots,
            is_sh,
            mm_kind,
            mm_value,
            self.stop_loss.pct if self.stop_loss else 0.0,
            self.take_profit.pct if self.take_profit else 0.0,
            self.slippage.pct if self.slippage else 0.0,
            costs,
            float(self.init_cash),
            self.fill == "close",
        )
        bench = _bench_returns(store, benchmark, dates, cal)
        daily = _daily(cal, cash, value, cost, traded, held, float(self.init_cash), bench)
        trades = _trades(grid, t_int, t_flt)
        positions = _positions(grid, st, ints, grid.floats(bars, "close")).with_columns(
            pl.when(pl.lit(self.stop_loss is not None)).then(pl.col("stop_price")),
            pl.when(pl.lit(self.take_profit is not None)).then(pl.col("target_price")),
        )
        log.info(
            "trading system ran %d code(s) over %d dates: %d closed trade(s)",
            len(code_list),
            cal.len(),
            trades.height,
        )
        return SystemResult(
            daily,
            trades,
            positions,
            float(self.init_cash),
            bars,
            stop_pct=self.stop_loss.pct if self.stop_loss else None,
            benchmark=None if benchmark is None else str(StockCode.parse(benchmark)),
        )


def _codes(codes: str | StockCode | Sequence[str | StockCode]) -> list[StockCode]:
    items = [codes] if isinstance(codes, str | StockCode) else list(codes)
    if not items:
        raise InvalidInputError("no codes to trade")
    out = [StockCode.parse(c) for c in items]
    if len(set(out)) != len(out):
        raise InvalidInputError(f"duplicate codes in {[str(c) for c in out]}")
    return out


def _lots(store: MarketData, codes: list[StockCode]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    names = [str(c) for c in codes]
    info = store.stocks(valid=None).filter(pl.col("code").is_in(names))
    lot_of = dict(zip(info["code"].to_list(), info["lot"].to_list(), strict=True))
    missing = [n for n in names if n not in lot_of]
    if missing:
        raise UnknownCodeError(f"code(s) {', '.join(missing)} not in the stock list of {store.source}")
    lots = np.array([float(lot_of[n] or 100) for n in names])
    return lots, np.array([c.market.value == "SH" for c in codes])


def _mm(mm: MoneyManager) -> tuple[int, float]:
    if isinstance(mm, FixedCount):
        return kernel.MM_COUNT, float(mm.n)
    if isinstance(mm, FixedPercent):
        return kernel.MM_PERCENT, float(mm.p)
    return kernel.MM_RISK, float(mm.risk)


class _Grid:
    """Maps bars onto a (calendar × codes) grid."""

    def __init__(self, cal: pl.Series, codes: list[StockCode]) -> None:
        self.cal = cal.cast(DATETIME)
        self.codes = [str(c) for c in codes]
        self.shape = (cal.len(), len(codes))
        self._t = pl.DataFrame({"datetime": self.cal, "_t": np.arange(cal.len(), dtype=np.int64)})
        self._c = pl.DataFrame({"code": self.codes, "_c": np.arange(len(codes), dtype=np.int64)})

    def index(self, frame: pl.DataFrame, on: str = "datetime") -> pl.DataFrame:
        out = frame.join(self._t.rename({"datetime": on}), on=on, how="inner")
        return out.join(self._c, on="code", how="inner")

    def _place(self, frame: pl.DataFrame, column: str, fill: float) -> np.ndarray[Any, Any]:
        idx = self.index(frame.select("code", "datetime", column))
        out = np.full(self.shape, fill)
        out[idx["_t"].to_numpy(), idx["_c"].to_numpy()] = idx[column].cast(pl.Float64).to_numpy()
        return out

    def floats(self, bars: pl.DataFrame, column: str) -> np.ndarray[Any, Any]:
        return np.ascontiguousarray(self._place(bars, column, np.nan))

    def flags(self, bars: pl.DataFrame, column: str) -> np.ndarray[Any, Any]:
        return np.ascontiguousarray(self._place(bars, column, 0.0) > 0.5)

    def events(
        self, store: MarketData, adjust: Adjust, bars: pl.DataFrame
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Gift shares and cash bonus per share held, on each code's first bar on or after an ex-date."""
        gift, bonus = np.zeros(self.shape), np.zeros(self.shape)
        if adjust is not Adjust.NONE:
            return gift, bonus
        for c, name in enumerate(self.codes):
            w = store.weights(StockCode.parse(name))
            if w.height == 0:
                continue
            w = (
                w.select(
                    pl.col("date"),
                    (0.1 * (pl.col("count_as_gift") + pl.col("count_of_increasement"))).alias("g"),
                    (0.1 * pl.col("bonus")).alias("b"),
                )
                .filter((pl.col("g") != 0) | (pl.col("b") != 0))
                .sort("date")
            )
            own = bars.filter(pl.col("code") == name).select("datetime")
            if w.height == 0 or own.height == 0:
                continue
            hit = w.join_asof(own, left_on="date", right_on="datetime", strategy="forward")
            hit = hit.filter(pl.col("datetime").is_not_null())
            hit = hit.group_by("datetime").agg(pl.col("g").sum(), pl.col("b").sum())
            idx = hit.join(self._t, on="datetime", how="inner")
            rows = idx["_t"].to_numpy()
            gift[rows, c] = idx["g"].to_numpy()
            bonus[rows, c] = idx["b"].to_numpy()
        return gift, bonus


def _bench_returns(
    store: MarketData, benchmark: str | StockCode | None, dates: DateRange, cal: pl.Series
) -> pl.Series:
    if benchmark is None:
        return pl.Series("bench_return", [None] * cal.len(), dtype=pl.Float64)
    code = StockCode.parse(benchmark)
    warm = DateRange(dates.start - dt.timedelta(days=20), dates.end)
    bars = store.read_bars(code, ktype=KType.DAY, dates=warm).select(
        "datetime", (pl.col("close") / pl.col("close").shift(1) - 1.0).alias("bench_return")
    )
    frame = pl.DataFrame({"datetime": cal.cast(DATETIME)}).join(bars, on="datetime", how="left")
    return frame["bench_return"].fill_null(0.0)


def _daily(
    cal: pl.Series,
    cash: Any,
    value: Any,
    cost: Any,
    traded: Any,
    held: Any,
    init_cash: float,
    bench: pl.Series,
) -> pl.DataFrame:
    account = cash + value
    prev = np.concatenate([[init_cash], account[:-1]])
    return pl.DataFrame(
        {
            "datetime": cal.cast(DATETIME),
            "return": (account - prev + cost) / prev,
            "cost": cost / prev,
            "turnover": traded / prev,
            "bench_return": bench,
            "account": account,
            "stock_value": value,
            "cash": cash,
            "holdings": held.astype(np.int64),
        }
    )


def _trades(grid: _Grid, t_int: Any, t_flt: Any) -> pl.DataFrame:
    if len(t_int) == 0:
        return pl.DataFrame(schema=TRADE_SCHEMA)
    cal = grid.cal.to_numpy()
    frame = pl.DataFrame(
        {
            "code": np.array(grid.codes, dtype=object)[t_int[:, 0]].tolist(),
            "entry_date": cal[t_int[:, 1]],
            "entry_price": t_flt[:, 0],
            "exit_date": cal[t_int[:, 2]],
            "exit_price": t_flt[:, 1],
            "shares": t_flt[:, 2],
            "pnl": t_flt[:, 3],
            "cost": t_flt[:, 4],
            "income": t_flt[:, 5],
            "reason": np.array(kernel.REASONS, dtype=object)[t_int[:, 3]].tolist(),
            "cash_share": t_flt[:, 6],
        }
    )
    return frame.select([pl.col(k).cast(v) for k, v in TRADE_SCHEMA.items()]).sort("entry_date", "code")


def _positions(grid: _Grid, st: Any, ints: Any, close: Any) -> pl.DataFrame:
    held = np.flatnonzero(st[:, 0] > 0)
    if held.size == 0:
        return pl.DataFrame(schema=POSITION_SCHEMA)
    cal = grid.cal.to_numpy()
    last = np.array([close[~np.isnan(close[:, c]), c][-1] for c in held])
    frame = pl.DataFrame(
        {
            "code": [grid.codes[c] for c in held],
            "entry_date": cal[ints[held, 2]],
            "entry_price": st[held, 1],
            "shares": st[held, 0],
            "last_close": last,
            "stop_price": st[held, 3],
            "target_price": st[held, 4],
            "cost": st[held, 5],
            "income": st[held, 6],
            "cash_share": st[held, 7],
        }
    )
    return frame.select([pl.col(k).cast(v) for k, v in POSITION_SCHEMA.items()])
