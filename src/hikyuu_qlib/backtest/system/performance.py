"""Hikyuu's ``Performance`` figures of a trading-system run, from its frames (the ``performance`` group).

The names and definitions are in :mod:`hikyuu_qlib.backtest.measures` (each names the Hikyuu figure it
corresponds to). Round trips are the run's closed trades (``TRADE_SCHEMA``): a win has a profit > 0 net
of costs, every other trip is a loss (as Hikyuu counts them). Holding times are calendar days from the
entry to the exit date; idle time counts the trading days that end without any position. Years are
calendar days from the first to the last date of the run, plus one, over 365.

The account figures follow Hikyuu's funds record: the system deposits ``init_cash`` once and neither
deposits more nor borrows, so the invested cash is ``init_cash``, the invested assets and the borrowed
cash and assets are 0, and the total assets are the cash plus the open positions at their last close.
The cash shares are over every buy (the closed round trips' and the open positions'), each the buy's
amount and costs over the cash just before it (``cash_share`` of ``TRADE_SCHEMA``).

R multiples need the risk taken at entry: with a stop loss of ``stop_pct``, a trip risks
``entry_price × stop_pct × shares``; without a stop loss they are NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

F64 = npt.NDArray[np.float64]
NAN = float("nan")


def performance_statistics(
    daily: pl.DataFrame,
    trades: pl.DataFrame,
    positions: pl.DataFrame,
    init_cash: float,
    stop_pct: float | None = None,
) -> dict[str, Any]:
    """The ``performance`` group of a run (``daily`` with ``datetime, account, stock_value, cash,
    holdings``)."""
    trades = trades.sort("exit_date", "code", maintain_order=True)
    pnl = trades["pnl"].cast(pl.Float64).to_numpy()
    win = pnl > 0
    days = (trades["exit_date"] - trades["entry_date"]).dt.total_days().cast(pl.Float64).to_numpy()
    invested = (trades["entry_price"] * trades["shares"]).cast(pl.Float64).to_numpy()
    cost = trades["cost"].cast(pl.Float64).to_numpy()
    first, last = (daily["datetime"][0], daily["datetime"][-1]) if daily.height else (None, None)
    years = ((last - first).days + 1) / 365.0 if first is not None and last is not None else NAN
    n = len(pnl)
    wins, losses = pnl[win], pnl[~win]
    avg_win = float(np.mean(wins)) if len(wins) else NAN
    avg_loss = float(np.mean(losses)) if len(losses) else NAN
    pct = pnl / (invested + cost) if n else pnl
    idle = (daily["holdings"].cast(pl.Int64).to_numpy() == 0) if daily.height else np.zeros(0, bool)
    idle_runs = _runs(idle)
    r = _r_multiples(trades, pnl, stop_pct)
    trades_per_year = n / years if years and years > 0 else NAN
    income = float(trades["income"].sum()) + (float(positions["income"].sum()) if positions.height else 0.0)
    cash = float(daily["cash"][-1]) if daily.height else init_cash
    market_value = float(daily["stock_value"][-1]) if daily.height else 0.0
    invested_cash, invested_assets, borrowed_cash, borrowed_assets = init_cash, 0.0, 0.0, 0.0
    total_assets = cash + market_value - borrowed_cash - borrowed_assets
    growth = total_assets / (invested_cash + invested_assets)
    shares = np.concatenate(
        [
            trades["cash_share"].cast(pl.Float64).to_numpy(),
            positions["cash_share"].cast(pl.Float64).to_numpy(),
        ]
    )
    out: dict[str, Any] = {
        "invested_cash": invested_cash,
        "invested_assets": invested_assets,
        "borrowed_cash": borrowed_cash,
        "borrowed_assets": borrowed_assets,
        "bonus_income": income,
        "cash": cash,
        "market_value": market_value,
        "total_assets": total_assets,
        "closed_cost": float(np.sum(cost)),
        "max_cash_share": float(np.max(shares)) if len(shares) else NAN,
        "mean_cash_share": float(np.mean(shares)) if len(shares) else NAN,
        "account_return": growth - 1.0,
        "closed_return": float(np.sum(pnl) / invested_cash),
        "cagr_calendar": growth ** (1.0 / years) - 1.0 if years > 0 and growth > 0 else NAN,
        "annual_return_calendar": (growth - 1.0) / years if years > 0 else NAN,
        "winning_trades": len(wins),
        "losing_trades": len(losses),
        "gross_profit": float(np.sum(wins)),
        "gross_loss": float(np.sum(losses)),
        "expectancy": float(np.mean(pnl)) if n else NAN,
        "win_loss_ratio": avg_win / abs(avg_loss) if len(wins) and len(losses) and avg_loss != 0 else NAN,
        "max_win": float(np.max(wins)) if len(wins) else NAN,
        "max_win_pct": float(np.max(pct[win])) if len(wins) else NAN,
        "max_loss": float(np.min(losses)) if len(losses) else NAN,
        "max_loss_pct": float(np.min(pct[~win])) if len(losses) else NAN,
        "avg_win_holding_days": float(np.mean(days[win])) if len(wins) else NAN,
        "max_win_holding_days": float(np.max(days[win])) if len(wins) else NAN,
        "avg_loss_holding_days": float(np.mean(days[~win])) if len(losses) else NAN,
        "max_loss_holding_days": float(np.max(days[~win])) if len(losses) else NAN,
        "max_consecutive_win_amount": _best_run_sum(pnl, win, largest=True),
        "max_consecutive_loss_amount": _best_run_sum(pnl, ~win, largest=False),
        "idle_days": int(np.sum(idle)),
        "idle_ratio": float(np.mean(idle)) if len(idle) else NAN,
        "avg_idle_days": float(np.mean(idle_runs)) if len(idle_runs) else 0.0,
        "max_idle_days": int(np.max(idle_runs)) if len(idle_runs) else 0,
        "trades_per_year": trades_per_year,
        "r_expectancy": float(np.mean(r)) if len(r) else NAN,
        "annual_r": float(np.mean(r)) * trades_per_year if len(r) else NAN,
        "avg_win_r": float(np.mean(r[win])) if len(r) and win.any() else NAN,
        "avg_loss_r": float(np.mean(r[~win])) if len(r) and (~win).any() else NAN,
        "max_win_r": float(np.max(r[win])) if len(r) and win.any() else NAN,
        "max_loss_r": float(np.min(r[~win])) if len(r) and (~win).any() else NAN,
    }
    return {k: (NAN if isinstance(v, float) and math.isinf(v) else v) for k, v in out.items()}


def _r_multiples(trades: pl.DataFrame, pnl: F64, stop_pct: float | None) -> F64:
    if not stop_pct or len(pnl) == 0:
        return np.zeros(0)
    risk = (trades["entry_price"] * trades["shares"]).cast(pl.Float64).to_numpy() * stop_pct
    return np.asarray(pnl / risk, dtype=np.float64)


def _runs(flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """The lengths of the runs of True in ``flags``."""
    if not flags.any():
        return np.zeros(0, dtype=np.int64)
    padded = np.concatenate([[0], flags.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return np.asarray(edges[1::2] - edges[::2], dtype=np.int64)


def _best_run_sum(pnl: F64, flags: npt.NDArray[np.bool_], *, largest: bool) -> float:
    """The largest (or smallest) sum of ``pnl`` over a run of consecutive ``flags`` (0 without one)."""
    best, current, inside = 0.0, 0.0, False
    for value, flag in zip(pnl, flags, strict=True):
        if flag:
            current = current + value if inside else value
            inside = True
            best = max(best, current) if largest else min(best, current)
        else:
            inside = False
    return float(best)
