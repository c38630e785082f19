"""Statistics of a trading-system run, computed with the backtest package's shared functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from hikyuu_qlib.backtest.stats import summary, trade_statistics

if TYPE_CHECKING:
    from hikyuu_qlib.backtest.system.engine import SystemResult


def fills(trades: pl.DataFrame) -> pl.DataFrame:
    """Closed round trips as buy and sell legs (``datetime, code, side, amount, value, cost``).

    The legs are built so that the shared ``trade_statistics`` reproduces each trip's pnl: the buy leg
    carries the entry amount and every cost of the trip, the sell leg the exit amount plus the cash
    bonuses received while held; both legs carry the shares sold, so that the trip ends flat even when
    gift shares were received.
    """
    exit_value = pl.col("exit_price") * pl.col("shares") + pl.col("income")
    entry_value = exit_value - pl.col("cost") - pl.col("pnl")
    buy = trades.select(
        pl.col("entry_date").alias("datetime"), "code", pl.lit("buy").alias("side"),
        pl.col("shares").alias("amount"), entry_value.alias("value"), "cost",
    )
    sell = trades.select(
        pl.col("exit_date").alias("datetime"), "code", pl.lit("sell").alias("side"),
        pl.col("shares").alias("amount"), exit_value.alias("value"), pl.lit(0.0).alias("cost"),
    )
    return pl.concat([buy, sell]).sort("code", "datetime", "side")


def round_trip_statistics(trades: pl.DataFrame) -> dict[str, float]:
    """Hikyuu-style statistics of closed round trips (``TRADE_SCHEMA`` frame)."""
    return trade_statistics(fills(trades))


def system_statistics(
    result: SystemResult, risk_free: pl.DataFrame | None = None
) -> dict[str, dict[str, float]]:
    """``summary`` of the daily frame (excess-return sections only with a benchmark) and the account."""
    daily = result.daily
    has_bench = daily["bench_return"].null_count() < daily.height
    out = summary(daily.with_columns(pl.col("bench_return").fill_null(0.0)), risk_free)
    if not has_bench:
        out = {k: v for k, v in out.items() if not k.startswith("excess_return")}
    final = float(daily["account"][-1])
    out["account"] = {
        "init_cash": result.init_cash,
        "final_account": final,
        "realised_pnl": float(result.trades["pnl"].sum()),
        "total_cost": float(result.trades["cost"].sum()) + float(result.positions["cost"].sum()),
        "closed_trades": float(result.trades.height),
        "open_positions": float(result.positions.height),
    }
    return out
