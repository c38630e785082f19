"""The outcome of a backtest: the daily report, end-of-day positions, trades and their statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.backtest import measures, stats
from hikyuu_qlib.backtest.config import BacktestConfig
from hikyuu_qlib.backtest.market import MarketArrays
from hikyuu_qlib.domain.schema import DATETIME

F64 = npt.NDArray[np.float64]
#: What Qlib's adjusted amount adds to the shares bought (``$factor`` moves while held), in cents.
ACCRUED = ((pl.col("value_yuan") - pl.col("shares") * pl.col("price_yuan")).round(2) + 0.0).alias(
    "accrued_yuan"
)


@dataclass(frozen=True, slots=True, eq=False)
class BacktestResult:
    """A finished backtest.

    * ``daily``: one row per trading day — ``datetime, return`` (before cost, Qlib's definition),
      ``cost, turnover`` (the day's, as fractions of the previous day's account value),
      ``bench_return`` (null without a benchmark), ``account`` (total value), ``stock_value, cash``
      (yuan), ``holdings`` (number of stocks held).
    * ``positions``: end-of-day holdings — ``datetime, code, shares`` (traded shares held: the whole
      lots bought), ``price_yuan`` (the traded price it is valued at: its last close), ``value_yuan,
      weight`` (of the account value), ``accrued_yuan`` and the engine's adjusted ``amount_adj,
      price_adj``.
    * ``trades``: the fills — ``datetime, code, side`` ("buy"/"sell"), ``shares, price_yuan,
      value_yuan, cost_yuan, accrued_yuan, amount_adj, price_adj``.

    The engine works, as Qlib does, in adjusted amounts and prices (``amount_adj × price_adj`` is the
    value; traded price = ``price_adj / $factor``). A buy of ``shares`` (whole lots with a trade unit)
    is ``amount_adj × $factor`` on its day; a sell sells the shares bought. When ``$factor`` moves while
    a stock is held (cash dividends, bonus shares), Qlib's adjusted amount folds that into the
    position's value: ``accrued_yuan = value_yuan − shares × price_yuan`` shows it. Where ``$factor`` is
    missing (a suspended day) the last known one applies.
    """

    config: BacktestConfig
    daily: pl.DataFrame
    positions: pl.DataFrame
    trades: pl.DataFrame
    benchmark: str | None = None

    @classmethod
    def from_arrays(
        cls, market: MarketArrays, config: BacktestConfig, raw: tuple[Any, ...], unit: float | None = None
    ) -> BacktestResult:
        """``unit``: the trade unit the engine applied (0 for fractional amounts; default the config's)."""
        cash, stock_value, total_cost, total_turnover, holdings, amount, price, traded, deal, fee = raw
        if unit is None:
            unit = float(config.trade_unit or 0)
        account = cash + stock_value
        last = np.concatenate([[config.account], account[:-1]])
        cost = np.diff(total_cost, prepend=0.0)
        turnover = np.diff(total_turnover, prepend=0.0)
        dates = pl.Series("datetime", market.dates).cast(DATETIME)
        bench = pl.Series("bench_return", market.bench_return, dtype=pl.Float64)
        if not market.benchmark:  # no benchmark: no flat line of zeros
            bench = pl.Series("bench_return", [None] * len(dates), dtype=pl.Float64)
        daily = pl.DataFrame(
            {
                "datetime": dates,
                "return": (account - last + cost) / last,
                "cost": cost / last,
                "turnover": turnover / last,
                "bench_return": bench,
                "account": account,
                "stock_value": stock_value,
                "cash": cash,
                "holdings": holdings.astype(np.int64),
            }
        )
        codes = np.asarray(market.codes, dtype=object)
        factor = known_factor(market.factor)
        trades = _trades(dates, codes, factor, traded, deal, fee, unit)
        positions = _positions(dates, codes, factor, amount, price, account, trades)
        return cls(config=config, daily=daily, positions=positions, trades=trades, benchmark=market.benchmark)

    def statistics(
        self, risk_free: pl.DataFrame | None = None, ic: pl.DataFrame | None = None
    ) -> dict[str, Any]:
        """The statistics document (:func:`~hikyuu_qlib.backtest.measures.statistics_document`).

        ``risk_free``: ``datetime, rate`` (annual, as a fraction; e.g. a store's ``risk_free()``)
        for the Sharpe ratio, else 0; ``ic``: the predictions' daily IC for the ``ic`` group.
        """
        return measures.statistics_document(
            self.daily, self.trades, benchmark=self.benchmark, risk_free=risk_free, ic=ic
        )

    def trade_statistics(self) -> dict[str, Any]:
        """The ``trades`` group: Hikyuu-style statistics of the round trips, and the fills."""
        return {**stats.trade_statistics(self.trades), "fills": self.trades.height}


def known_factor(factor: F64) -> F64:
    """``$factor`` with each gap (a suspended day) taking the code's last known value (its first before
    it has one); 1 for a code without any (its prices are the traded ones)."""
    values = np.asarray(factor, dtype=np.float64)
    if values.size == 0:
        return values.copy()
    known = ~np.isnan(values)
    rows = np.where(known, np.arange(values.shape[0])[:, None], 0)
    np.maximum.accumulate(rows, axis=0, out=rows)
    cols = np.arange(values.shape[1])
    filled = values[rows, cols]
    first = values[np.argmax(known, axis=0), cols]
    filled = np.where(np.isnan(filled), first, filled)
    return np.where(np.isnan(filled), 1.0, filled)


def _shares(amount: F64, factor: F64, unit: float) -> pl.Series:
    """Traded shares of adjusted ``amount``s: whole numbers with a trade unit (the engine rounded the
    amounts to whole lots of ``amount × factor``), fractional without."""
    shares = amount * factor
    if unit > 0:
        return pl.Series("shares", np.round(shares), dtype=pl.Int64)
    return pl.Series("shares", shares, dtype=pl.Float64)


def _trades(
    dates: pl.Series, codes: Any, factor: F64, traded: F64, deal: F64, fee: F64, unit: float
) -> pl.DataFrame:
    rows, cols = np.nonzero(traded)
    size = traded[rows, cols]
    amount = np.abs(size)
    price_adj = deal[rows, cols]
    f = factor[rows, cols]
    buy = size > 0
    frame = pl.DataFrame(
        {
            "datetime": dates.gather(rows),
            "code": pl.Series(codes[cols], dtype=pl.String),
            "side": pl.Series(np.where(buy, "buy", "sell"), dtype=pl.String),
            "bought": _shares(amount, f, unit),
            "price_yuan": price_adj / f,
            "value_yuan": amount * price_adj,
            "cost_yuan": fee[rows, cols],
            "amount_adj": amount,
            "price_adj": price_adj,
        }
    )
    # a sell clears the position: it sells the shares bought since the code's last sell
    sell = (pl.col("side") == "sell").cast(pl.Int64)
    trip = (sell.cum_sum() - sell).over("code")
    frame = frame.with_columns(trip.alias("_trip")).with_columns(
        pl.when(pl.col("side") == "buy")
        .then(pl.col("bought"))
        .otherwise(pl.col("bought").filter(pl.col("side") == "buy").sum().over("code", "_trip"))
        .alias("shares")
    )
    return frame.select(
        "datetime", "code", "side", "shares", "price_yuan", "value_yuan", "cost_yuan",
        ACCRUED,
        "amount_adj", "price_adj",
    )  # fmt: skip


def _positions(
    dates: pl.Series, codes: Any, factor: F64, amount: F64, price: F64, account: F64, trades: pl.DataFrame
) -> pl.DataFrame:
    rows, cols = np.nonzero(amount)
    held = amount[rows, cols]
    price_adj = price[rows, cols]
    value = held * price_adj
    frame = pl.DataFrame(
        {
            "datetime": dates.gather(rows),
            "code": pl.Series(codes[cols], dtype=pl.String),
            "price_yuan": price_adj / factor[rows, cols],
            "value_yuan": value,
            "weight": value / account[rows],
            "amount_adj": held,
            "price_adj": price_adj,
        }
    )
    # the shares held: those of the code's last trade on or before the day (a sell leaves none)
    signed = pl.when(pl.col("side") == "buy").then(pl.col("shares")).otherwise(-pl.col("shares"))
    after = (
        trades.select("datetime", "code", signed.cum_sum().over("code").alias("shares"))
        .group_by("datetime", "code", maintain_order=True)
        .last()
        .sort("datetime")
    )
    joined = (
        frame.with_row_index("_row")
        .sort("datetime")
        .join_asof(after, on="datetime", by="code", check_sortedness=False)
    )
    return joined.sort("_row").select(
        "datetime", "code", "shares", "price_yuan", "value_yuan", "weight",
        ACCRUED,
        "amount_adj", "price_adj",
    )  # fmt: skip
