"""Statistics of a trading-system run: account summary plus the shared trade statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hikyuu_qlib.backtest.system.engine import SystemResult


def account_summary(result: SystemResult) -> dict[str, Any]:
    """Money in and out of the account over the run."""
    daily = result.daily
    final = float(daily["account"][-1]) if daily.height else result.init_cash
    return {
        "init_cash": result.init_cash,
        "final_account": final,
        "total_return": final / result.init_cash - 1.0,
        "closed_trades": result.trades.height,
        "open_positions": result.positions.height,
        "realised_pnl": float(result.trades["pnl"].sum()),
        "total_cost": float(result.trades["cost"].sum()) + float(result.positions["cost"].sum()),
    }


def system_statistics(result: SystemResult) -> dict[str, Any]:
    """Account summary and (once available) the backtest package's trade statistics."""
    return account_summary(result)
