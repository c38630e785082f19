"""Backtesting: the portfolio engine (TopkDropout with Qlib's semantics, A-share rules), statistics, and
the Hikyuu-style trading system and reports in the sub-packages."""

from hikyuu_qlib.backtest.config import BacktestConfig
from hikyuu_qlib.backtest.engine import run_on_grid, run_topk_backtest, score_grid
from hikyuu_qlib.backtest.market import MarketArrays, load_market
from hikyuu_qlib.backtest.result import BacktestResult
from hikyuu_qlib.backtest.stats import risk_analysis, sharpe, trade_statistics

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
