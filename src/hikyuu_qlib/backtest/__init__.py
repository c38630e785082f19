"""Backtesting: the portfolio engine, the Hikyuu-style trading system, statistics and reports."""
