"""Backtesting: the portfolio engine (TopkDropout with Qlib's semantics, A-share rules), statistics, and
the Hikyuu-style trading system and reports in the sub-packages.

The names below are loaded on first use: importing a light module of the package (its configuration, its
formats) does not import the engine's numba kernels, so commands that never backtest start without them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hikyuu_qlib.lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from hikyuu_qlib.backtest.config import BacktestConfig
    from hikyuu_qlib.backtest.engine import run_on_grid, run_topk_backtest, score_grid
    from hikyuu_qlib.backtest.market import MarketArrays, load_market
    from hikyuu_qlib.backtest.result import BacktestResult
    from hikyuu_qlib.backtest.stats import risk_analysis, sharpe, trade_statistics

_WHERE = {
    "BacktestConfig": "hikyuu_qlib.backtest.config",
    "BacktestResult": "hikyuu_qlib.backtest.result",
    "MarketArrays": "hikyuu_qlib.backtest.market",
    "load_market": "hikyuu_qlib.backtest.market",
    "risk_analysis": "hikyuu_qlib.backtest.stats",
    "run_on_grid": "hikyuu_qlib.backtest.engine",
    "run_topk_backtest": "hikyuu_qlib.backtest.engine",
    "score_grid": "hikyuu_qlib.backtest.engine",
    "sharpe": "hikyuu_qlib.backtest.stats",
    "trade_statistics": "hikyuu_qlib.backtest.stats",
}
__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "MarketArrays",
    "load_market",
    "risk_analysis",
    "run_on_grid",
    "run_topk_backtest",
    "score_grid",
    "sharpe",
    "trade_statistics",
]
__getattr__ = _lazy_exports(globals(), _WHERE)
