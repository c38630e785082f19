"""The computations behind backtest statistics: Qlib's ``risk_analysis``, Sharpe, round-trip statistics.

Their names and definitions, and the document that every output renders, are in
:mod:`hikyuu_qlib.backtest.measures`.

:func:`risk_analysis` reproduces ``qlib.contrib.evaluate.risk_analysis``: in ``sum`` mode returns are
accumulated by addition (annualized return = mean × N, max drawdown on the cumulative sum), in
``product`` mode by compounding; N is 238 trading days a year for daily data (50 weeks, 12 months,
240 × 238 minutes). NaN returns are skipped, as pandas skips them.

The risk-free rate for the Sharpe ratio is a ``datetime, rate`` frame of annual rates (a store's
:class:`~hikyuu_qlib.ports.RiskFreeSource`, e.g. Hikyuu's 10-year government bond yields), divided by N;
each day takes the latest quote on or before it (the first quote before the table starts).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.domain.schema import DATETIME

F64 = npt.NDArray[np.float64]
SCALERS = {"minute": 240 * 238, "min": 240 * 238, "day": 238, "week": 50, "month": 12}


def scaler(freq: str) -> float:
    """Periods per year of ``freq`` (``day``, ``5min``, ``week``, ``month`` …), as Qlib scales them."""
    match = re.fullmatch(r"\s*(\d*)\s*([a-z]+)\s*", freq.lower())
    unit = match.group(2) if match else ""
    if not match or unit not in SCALERS:
        raise InvalidInputError(f"unknown frequency {freq!r}: expected e.g. day, week, month, 5min")
    count = int(match.group(1) or 1)
    return SCALERS[unit] / count


def _values(returns: pl.Series | F64 | list[float]) -> F64:
    if isinstance(returns, pl.Series):
        return returns.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64)
    return np.asarray(returns, dtype=np.float64)


def risk_analysis(
    returns: pl.Series | F64 | list[float],
    freq: str = "day",
    mode: Literal["sum", "product"] = "sum",
    n: float | None = None,
) -> dict[str, float]:
    """``mean, std, annualized_return, information_ratio, max_drawdown`` exactly as Qlib computes them."""
    everything = _values(returns)
    r = everything[~np.isnan(everything)]
    periods = scaler(freq) if n is None else float(n)
    if len(r) == 0:
        nan = float("nan")
        return dict.fromkeys(("mean", "std", "annualized_return", "information_ratio", "max_drawdown"), nan)
    if mode == "sum":
        mean = float(np.mean(r))
        std = _std(r)
        annualized = mean * periods
        curve = np.cumsum(r)
        max_drawdown = float(np.min(curve - np.maximum.accumulate(curve)))
    elif mode == "product":
        # Qlib divides by the length including NaN returns (pandas' cumprod skips them)
        curve = np.cumprod(1.0 + r).astype(np.float64)
        mean = float(curve[-1] ** (1.0 / len(everything)) - 1.0)
        std = _std(np.log1p(r).astype(np.float64))
        annualized = float(curve[-1] ** (periods / len(everything)) - 1.0)
        max_drawdown = float(np.min(curve / np.maximum.accumulate(curve) - 1.0))
    else:
        raise InvalidInputError(f"unknown accumulation mode {mode!r}: expected 'sum' or 'product'")
    with np.errstate(divide="ignore", invalid="ignore"):
        ir = float(np.float64(mean) / np.float64(std) * np.sqrt(periods))
    return {
        "mean": mean,
        "std": std,
        "annualized_return": float(annualized),
        "information_ratio": ir,
        "max_drawdown": max_drawdown,
    }


def _std(x: F64) -> float:
    """Sample standard deviation (ddof 1, pandas' default); NaN for fewer than two values."""
    return float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")


def risk_free_daily(dates: pl.Series, risk_free: pl.DataFrame | None, periods: float = 238.0) -> F64:
    """The per-period risk-free return on each of ``dates``: the latest known annual rate / ``periods``."""
    if risk_free is None or risk_free.is_empty():
        return np.zeros(len(dates))
    if "datetime" not in risk_free.columns or "rate" not in risk_free.columns:
        raise InvalidInputError(f"risk_free needs columns datetime, rate; got {risk_free.columns}")
    left = pl.DataFrame({"datetime": dates.cast(DATETIME)}).with_row_index("i")
    right = risk_free.select(pl.col("datetime").cast(DATETIME), pl.col("rate").cast(pl.Float64))
    right = right.sort("datetime")
    joined = left.sort("datetime").join_asof(right, on="datetime", strategy="backward").sort("i")
    # days before the first quote take the first known rate
    return joined["rate"].fill_null(right["rate"][0]).to_numpy() / periods


def sharpe(returns: F64, risk_free: F64 | None = None, periods: float = 238.0) -> float:
    """Annualized Sharpe ratio of per-period ``returns`` over per-period ``risk_free`` returns."""
    excess = np.asarray(returns, float) - (0.0 if risk_free is None else np.asarray(risk_free, float))
    excess = excess[~np.isnan(excess)]
    if len(excess) < 2:
        return float("nan")
    std = float(np.std(excess, ddof=1))
    return float(np.mean(excess) / std * np.sqrt(periods)) if std > 0 else float("nan")


def trade_statistics(trades: pl.DataFrame) -> dict[str, Any]:
    """Round-trip statistics of fills (``datetime, code, side, amount_adj, value_yuan, cost_yuan``),
    Hikyuu-style; the names are defined in :mod:`hikyuu_qlib.backtest.measures`.

    A round trip of a stock runs from a buy out of a flat position to the sell that brings it back to
    flat (followed in ``amount_adj``, which a sell clears exactly); its profit is sells − buys − costs.
    Open round trips (still held at the end) are not counted. Holding time is in calendar days from the
    first buy to the closing sell. Wins and losses run in the order the round trips close.
    """
    needed = ("datetime", "code", "side", "amount_adj", "value_yuan", "cost_yuan")
    missing = [c for c in needed if c not in trades.columns]
    if missing:
        raise InvalidInputError(f"trades lack column(s) {missing}")
    trades = trades.rename({"amount_adj": "amount", "value_yuan": "value", "cost_yuan": "cost"})
    signed = pl.when(pl.col("side") == "buy").then(pl.col("amount")).otherwise(-pl.col("amount"))
    legs = (
        trades.sort(["code", "datetime"], maintain_order=True)
        .with_columns(signed.cum_sum().over("code").alias("after"), signed.alias("signed"))
        .with_columns(
            ((pl.col("after") - pl.col("signed")).abs() <= 1e-9 * pl.col("amount")).alias("opens"),
            (pl.col("after").abs() <= 1e-9 * pl.col("amount")).alias("flat"),
        )
        .with_columns(pl.col("opens").cast(pl.Int64).cum_sum().over("code").alias("trip"))
    )
    money = pl.when(pl.col("side") == "sell").then(pl.col("value")).otherwise(-pl.col("value"))
    trips = (
        legs.group_by(["code", "trip"])
        .agg(
            (money.sum() - pl.col("cost").sum()).alias("pnl"),
            pl.col("value").filter(pl.col("side") == "buy").sum().alias("invested"),
            pl.col("datetime").min().alias("opened"),
            pl.col("datetime").max().alias("closed"),
            pl.col("flat").last().alias("done"),
        )
        .filter(pl.col("done"))
        .sort(["closed", "code"])
    )
    pnl = trips["pnl"].to_numpy()
    n = len(pnl)
    if n == 0:
        return {"trades": 0, "win_rate": float("nan"), "avg_win": float("nan"), "avg_loss": float("nan"),
                "profit_factor": float("nan"), "max_consecutive_wins": 0, "max_consecutive_losses": 0,
                "avg_holding_days": float("nan"), "avg_return": float("nan")}  # fmt: skip
    wins, losses = pnl[pnl > 0], pnl[pnl <= 0]
    days = (trips["closed"] - trips["opened"]).dt.total_days().to_numpy()
    return {
        "trades": n,
        "win_rate": float(len(wins) / n),
        "avg_win": float(np.mean(wins)) if len(wins) else float("nan"),
        "avg_loss": float(np.mean(losses)) if len(losses) else float("nan"),
        "profit_factor": float(np.sum(wins) / -np.sum(losses)) if np.sum(losses) < 0 else float("nan"),
        "max_consecutive_wins": _longest_run(pnl > 0),
        "max_consecutive_losses": _longest_run(pnl <= 0),
        "avg_holding_days": float(np.mean(days)),
        "avg_return": float(np.mean(pnl / trips["invested"].to_numpy())),
    }


def _longest_run(flags: npt.NDArray[np.bool_]) -> int:
    """Length of the longest run of True in ``flags``."""
    if not flags.any():
        return 0
    padded = np.concatenate([[0], flags.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return int(np.max(edges[1::2] - edges[::2]))
