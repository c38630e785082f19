"""Backtest statistics: Qlib's risk_analysis reproduced, Sharpe with zh_bond10, trade statistics."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from hikyuu_qlib.backtest import risk_analysis, sharpe, trade_statistics
from hikyuu_qlib.backtest.measures import statistics_document
from hikyuu_qlib.backtest.stats import risk_free_daily, scaler
from hikyuu_qlib.domain import InvalidInputError, StoreNotFoundError
from hikyuu_qlib.stores.hikyuu.bonds import read_zh_bond10


@pytest.mark.parametrize("mode", ["sum", "product"])
@pytest.mark.parametrize("freq", ["day", "week", "month", "5min"])
def test_risk_analysis_equals_qlib(mode: str, freq: str) -> None:
    from qlib.contrib.evaluate import risk_analysis as qlib_risk_analysis

    rng = np.random.default_rng(3)
    r = rng.normal(0.0005, 0.01, 500)
    r[[10, 200]] = np.nan  # pandas skips NaN
    expected = qlib_risk_analysis(pd.Series(r), freq=freq, mode=mode)["risk"]
    got = risk_analysis(r, freq=freq, mode=mode)  # type: ignore[arg-type]
    assert set(got) == set(expected.index)
    for key, value in got.items():
        assert value == pytest.approx(expected[key], rel=1e-12, abs=1e-15), key


def test_risk_analysis_by_hand() -> None:
    got = risk_analysis(pl.Series([0.01, -0.02, 0.03, -0.01]))
    assert got["mean"] == pytest.approx(0.0025)
    assert got["annualized_return"] == pytest.approx(0.0025 * 238)
    assert got["max_drawdown"] == pytest.approx(-0.02)  # cumsum 0.01, -0.01, 0.02, 0.01: worst 0.01 -> -0.01
    assert got["information_ratio"] == pytest.approx(
        0.0025 / np.std([0.01, -0.02, 0.03, -0.01], ddof=1) * np.sqrt(238)
    )


def test_frequency_scalers() -> None:
    assert scaler("day") == 238 and scaler("1day") == 238 and scaler("week") == 50 and scaler("month") == 12
    assert scaler("5min") == 240 * 238 / 5
    with pytest.raises(InvalidInputError, match="fortnight"):
        scaler("fortnight")
    with pytest.raises(InvalidInputError, match="mode"):
        risk_analysis([0.1, 0.2], mode="median")  # type: ignore[arg-type]


def test_zh_bond10_and_sharpe(hikyuu_dir: Path) -> None:
    bonds = read_zh_bond10(hikyuu_dir / "stock.db")
    assert bonds.columns == ["datetime", "rate"] and bonds.height > 1000
    assert bonds["datetime"].is_sorted()
    assert 0.01 < bonds["rate"].median() < 0.06  # 10-year yields of a few percent
    first = bonds.row(0, named=True)
    # an as-of lookup: a day after the first quote takes that quote; a day before takes the first known
    days = pl.Series([first["datetime"] + dt.timedelta(days=1), first["datetime"] - dt.timedelta(days=30)])
    assert np.allclose(risk_free_daily(days, bonds), first["rate"] / 238)

    r = np.random.default_rng(1).normal(0.001, 0.01, 300)
    rf = np.full(300, 0.03 / 238)
    assert sharpe(r, rf) == pytest.approx(np.mean(r - rf) / np.std(r - rf, ddof=1) * np.sqrt(238))
    assert sharpe(r, rf) < sharpe(r)
    with pytest.raises(StoreNotFoundError):
        read_zh_bond10(hikyuu_dir / "no-such.db")


def _trades(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema=["datetime", "code", "side", "amount_adj", "value_yuan", "cost_yuan"], orient="row"
    ).with_columns(pl.col("datetime").str.to_datetime("%Y-%m-%d"))


def test_trade_statistics_round_trips() -> None:
    trades = _trades(
        [
            ("2020-01-02", "A", "buy", 100.0, 1000.0, 5.0),
            ("2020-01-06", "A", "sell", 100.0, 1100.0, 5.0),  # +90, 4 days
            ("2020-01-03", "B", "buy", 200.0, 2000.0, 5.0),
            ("2020-01-07", "B", "sell", 100.0, 900.0, 5.0),  # partial: the trip stays open
            ("2020-01-08", "B", "sell", 100.0, 950.0, 5.0),  # -165, 5 days
            ("2020-01-09", "A", "buy", 100.0, 1000.0, 5.0),
            ("2020-01-10", "A", "sell", 100.0, 990.0, 5.0),  # -20, 1 day
            ("2020-01-10", "C", "buy", 100.0, 500.0, 5.0),
            ("2020-01-13", "C", "sell", 100.0, 700.0, 5.0),  # +190, 3 days
            ("2020-01-14", "D", "buy", 100.0, 700.0, 5.0),  # still open: not counted
        ]
    )
    got = trade_statistics(trades)
    assert got["trades"] == 4
    assert got["win_rate"] == 0.5
    assert got["avg_win"] == pytest.approx((90 + 190) / 2)
    assert got["avg_loss"] == pytest.approx((-165 - 20) / 2)
    assert got["profit_factor"] == pytest.approx(280 / 185)
    # closing order: A(+) 01-06, B(-) 01-08, A(-) 01-10, C(+) 01-13
    assert got["max_consecutive_wins"] == 1 and got["max_consecutive_losses"] == 2
    assert got["avg_holding_days"] == pytest.approx((4 + 5 + 1 + 3) / 4)
    empty = trade_statistics(trades.filter(pl.col("code") == "D"))
    assert empty["trades"] == 0 and np.isnan(empty["win_rate"])
    with pytest.raises(InvalidInputError, match="side"):
        trade_statistics(trades.drop("side"))


def test_statistics_document_groups() -> None:
    days = pl.datetime_range(dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 10), "1d", eager=True)
    ret = np.array([0.01, -0.02, 0.015, 0.0, 0.01, -0.005, 0.02, 0.0, -0.01, 0.005])
    daily = pl.DataFrame(
        {"datetime": days, "return": ret, "cost": np.full(10, 0.001), "turnover": np.full(10, 0.1),
         "bench_return": np.full(10, 0.002), "account": 1e8 * np.cumprod(1 + ret - 0.001)}
    )  # fmt: skip
    got = statistics_document(daily, benchmark="SH000300")
    qlib = risk_analysis(ret - 0.002)
    without = got["excess_return_without_cost"]
    assert without["annualized_return_sum"] == qlib["annualized_return"]
    assert without["max_drawdown_sum"] == qlib["max_drawdown"]
    assert without["information_ratio"] == qlib["information_ratio"] and without["mean"] == qlib["mean"]
    assert got["excess_return_with_cost"]["mean"] == risk_analysis(ret - 0.003)["mean"]
    port = got["portfolio"]
    assert port["daily_win_rate"] == pytest.approx(np.mean(ret - 0.001 > 0))
    assert port["mean_daily_turnover"] == pytest.approx(0.1)
    assert port["calmar"] == pytest.approx(port["cagr"] / -port["max_drawdown_compound"])
    assert port["total_return"] == pytest.approx(np.prod(1 + ret - 0.001) - 1)
    assert port["trading_days"] == 10 and isinstance(port["trading_days"], int)
    assert got["benchmark"]["code"] == "SH000300"
    assert got["benchmark"]["total_return"] == pytest.approx(1.002**10 - 1)
