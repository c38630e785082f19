"""Backtest reports: a self-contained ``report.html`` with charts and tables, PNGs and the daily frame."""

from hikyuu_qlib.backtest.report.ic import IC_SCHEMA, forward_returns, information_coefficient
from hikyuu_qlib.backtest.report.run import Reportable, collect_statistics, prediction_ic, run_report
from hikyuu_qlib.backtest.report.writer import ReportPaths, check_daily, write_report

__all__ = [
    "IC_SCHEMA",
    "ReportPaths",
    "Reportable",
    "check_daily",
    "collect_statistics",
    "forward_returns",
    "information_coefficient",
    "prediction_ic",
    "run_report",
    "write_report",
]
