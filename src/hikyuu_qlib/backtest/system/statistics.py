"""Statistics of a trading-system run, computed with the backtest package's shared functions.

They take the run's frames (daily, round trips, open positions), not the result object, so that the
engine can use them without this module knowing the engine.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from hikyuu_qlib.backtest.measures import statistics_document
from hikyuu_qlib.backtest.stats import trade_statistics
from hikyuu_qlib.backtest.system.performance import performance_statistics


def fills(trades: pl.DataFrame) -> pl.DataFrame:
    """Closed round trips as buy and sell legs (``datetime, code, side, amount_adj, value_yuan, cost_yuan``).

    The legs are built so that the shared ``trade_statistics`` reproduces each trip's pnl: the buy leg
    carries the entry amount and every cost of the trip, the sell leg the exit amount plus the cash
    bonuses received while held; both legs carry the shares sold, so that the trip ends flat even when
    gift shares were received.
    """
    exit_value = pl.col("exit_price") * pl.col("shares") + pl.col("income")
    entry_value = exit_value - pl.col("cost") - pl.col("pnl")
    buy = trades.select(
        pl.col("entry_date").alias("datetime"),
        "code",
        pl.lit("buy").alias("side"),
        pl.col("shares").alias("amount_adj"),
        entry_value.alias("value_yuan"),
        pl.col("cost").alias("cost_yuan"),
    )
    sell = trades.select(
        pl.col("exit_date").alias("datetime"),
        "code",
        pl.lit("sell").alias("side"),
        pl.col("shares").alias("amount_adj"),
        exit_value.alias("value_yuan"),
        pl.lit(0.0).alias("cost_yuan"),
    )
    return pl.concat([buy, sell]).sort("code", "datetime", "side")


def round_trip_statistics(trades: pl.DataFrame) -> dict[str, Any]:
    """Hikyuu-style statistics of closed round trips (``TRADE_SCHEMA`` frame)."""
    return trade_statistics(fills(trades))


def system_statistics(
    daily: pl.DataFrame,
    trades: pl.DataFrame,
    positions: pl.DataFrame,
    risk_free: pl.DataFrame | None = None,
    *,
    init_cash: float | None = None,
    stop_pct: float | None = None,
    benchmark: str | None = None,
) -> dict[str, Any]:
    """The statistics document of the ``daily`` frame (excess-return groups only with a benchmark), with
    the round ``trades`` (``TRADE_SCHEMA``), the realised profit and the count of open ``positions``;
    with ``init_cash``, Hikyuu's Performance figures (the ``performance`` group, see :mod:`.performance`;
    ``stop_pct`` gives the R multiples)."""
    doc = statistics_document(daily, risk_free=risk_free, benchmark=benchmark)
    doc["portfolio"]["realised_pnl"] = float(trades["pnl"].sum())
    doc["portfolio"]["open_positions"] = positions.height
    doc["trades"] = round_trip_statistics(trades)
    if init_cash is not None:
        doc["performance"] = performance_statistics(daily, trades, positions, init_cash, stop_pct)
    return doc
