"""The outcome of a backtest: the daily report, end-of-day positions, trades and their statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.backtest import stats
from hikyuu_qlib.backtest.config import BacktestConfig
from hikyuu_qlib.backtest.market import MarketArrays
from hikyuu_qlib.domain.schema import DATETIME

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class BacktestResult:
    """A finished backtest.

    * ``daily``: one row per trading day — ``datetime, return`` (before cost, Qlib's definition),
      ``cost, turnover`` (the day's, as fractions of the previous day's account value),
      ``bench_return, account`` (total value), ``stock_value, cash, holdings`` (number of stocks held).
    * ``positions``: end-of-day holdings — ``datetime, code, amount`` (adjusted shares), ``shares``
      (original shares = amount × factor), ``price`` (the adjusted price it is valued at), ``value,
      weight`` (of the account value).
    * ``trades``: ``datetime, code, side`` ("buy"/"sell"), ``amount, shares, price, value, cost``.
    """

    config: BacktestConfig
    daily: pl.DataFrame
    positions: pl.DataFrame
    trades: pl.DataFrame

    @classmethod
    def from_arrays(
        cls, market: MarketArrays, config: BacktestConfig, raw: tuple[Any, ...]
    ) -> BacktestResult:
        cash, stock_value, total_cost, total_turnover, holdings, amount, price, traded, deal, fee = raw
        account = cash + stock_value
        last = np.concatenate([[config.init_cash], account[:-1]])
        cost = np.diff(total_cost, prepend=0.0)
        turnover = np.diff(total_turnover, prepend=0.0)
        dates = pl.Series("datetime", market.dates).cast(DATETIME)
        daily = pl.DataFrame(
            {
                "datetime": dates,
                "return": (account - last + cost) / last,
                "cost": cost / last,
                "turnover": turnover / last,
                "bench_return": market.bench_return,
                "account": account,
                "stock_value": stock_value,
                "cash": cash,
                "holdings": holdings.astype(np.int64),
            }
        )
        codes = np.asarray(market.codes, dtype=object)
        rows, cols = np.nonzero(amount)
        value = amount[rows, cols] * price[rows, cols]
        positions = pl.DataFrame(
            {
                "datetime": dates.gather(rows),
                "code": pl.Series(codes[cols], dtype=pl.String),
                "amount": amount[rows, cols],
                "shares": amount[rows, cols] * market.factor[rows, cols],
                "price": price[rows, cols],
                "value": value,
                "weight": value / account[rows],
            }
        )
        rows, cols = np.nonzero(traded)
        size = traded[rows, cols]
        trades = pl.DataFrame(
            {
                "datetime": dates.gather(rows),
                "code": pl.Series(codes[cols], dtype=pl.String),
                "side": pl.Series(np.where(size > 0, "buy", "sell"), dtype=pl.String),
                "amount": np.abs(size),
                "shares": np.abs(size) * market.factor[rows, cols],
                "price": deal[rows, cols],
                "value": np.abs(size) * deal[rows, cols],
                "cost": fee[rows, cols],
            }
        )
        return cls(config=config, daily=daily, positions=positions, trades=trades)

    def statistics(self, risk_free: pl.DataFrame | None = None) -> dict[str, dict[str, float]]:
        """Qlib's risk analysis of excess returns with and without cost, and portfolio figures.

        ``risk_free``: ``datetime, rate`` (annual, as a fraction; e.g. :func:`stats.read_zh_bond10`)
        for the Sharpe ratio; without it the risk-free rate is 0.
        """
        return stats.summary(self.daily, risk_free=risk_free)

    def trade_statistics(self) -> dict[str, float]:
        """Hikyuu-style statistics of the round trips (buy … sell back to flat) of each stock."""
        return stats.trade_statistics(self.trades)
