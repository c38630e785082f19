"""Backtest figures print by their kind; every figure of a statistics document has a name and a definition."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl

from hikyuu_qlib.backtest.formats import format_cell, format_measure, format_number, summary_rows
from hikyuu_qlib.backtest.measures import GROUPS, MEASURES, Kind, entries, statistics_document, used_measures
from hikyuu_qlib.serialization import to_json_text


def _daily(bench: bool = True) -> pl.DataFrame:
    days = pl.datetime_range(dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 20), "1d", eager=True)
    ret = np.random.default_rng(2).normal(0.001, 0.01, days.len())
    frame = pl.DataFrame(
        {"datetime": days, "return": ret, "cost": np.full(days.len(), 0.0005),
         "turnover": np.full(days.len(), 0.2), "account": 1e6 * np.cumprod(1 + ret - 0.0005)}
    )  # fmt: skip
    bench_return = pl.Series(np.full(days.len(), 0.001) if bench else [None] * days.len(), dtype=pl.Float64)
    return frame.with_columns(bench_return.alias("bench_return"))


def _fills() -> pl.DataFrame:
    rows = [
        ("2020-01-02", "A", "buy", 100.0, 1000.0, 5.0),
        ("2020-01-06", "A", "sell", 100.0, 1100.0, 5.0),
        ("2020-01-03", "B", "buy", 200.0, 2000.0, 5.0),
        ("2020-01-08", "B", "sell", 200.0, 1900.0, 5.0),
    ]
    schema = ["datetime", "code", "side", "amount_adj", "value_yuan", "cost_yuan"]
    return pl.DataFrame(rows, schema=schema, orient="row").with_columns(pl.col("datetime").str.to_datetime())


def _ic() -> pl.DataFrame:
    days = pl.datetime_range(dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 10), "1d", eager=True)
    return pl.DataFrame(
        {"datetime": days, "ic": np.linspace(-0.1, 0.2, 10), "rank_ic": np.linspace(0, 0.1, 10)}
    )


def test_numbers_print_by_kind() -> None:
    assert format_measure("trades", 1234.0) == "1,234" and format_measure("trading_days", 243) == "243"
    assert format_measure("total_return", 0.12345) == "12.35 %"
    assert format_measure("mean", 0.00042) == "0.0420 %"  # small daily means keep their digits
    assert format_measure("final_account", 98765432.1) == "98,765,432.10 yuan"
    assert format_measure("sharpe", 1.23456) == "1.2346"
    assert format_measure("avg_holding_days", 14.386) == "14.39 days"
    assert format_measure("ic", float("nan")) == "—" and format_measure("calmar", None) == "—"
    assert (
        format_measure("code", "SH000300") == "SH000300"
        and format_measure("first_day", "2020-01-02") == "2020-01-02"
    )
    assert (
        format_number(7) == "7"
        and format_number(7.0) == "7.0000"
        and format_number(dt.date(2020, 1, 2)) == "2020-01-02"
    )
    assert format_cell("shares", 1200) == "1,200" and format_cell("price_yuan", 12.3456) == "12.35"
    assert format_cell("weight", 0.05) == "5.00 %" and format_cell("code", "SH600000") == "SH600000"


def test_every_figure_has_one_name_and_a_definition() -> None:
    doc = statistics_document(_daily(), _fills(), benchmark="SH000300", ic=_ic())
    assert set(doc) == set(GROUPS) - {"performance"}  # that group is the trading system's (its own test)
    names = [name for _, name, _ in entries(doc)]
    assert set(names) <= set(MEASURES) and all(MEASURES[n].definition for n in names)
    assert {m.name for m in used_measures(doc)} == set(names)
    # two definitions, two names: sum mode against compounding
    port = doc["portfolio"]
    assert {"annualized_return_sum", "cagr", "max_drawdown_sum", "max_drawdown_compound"} <= set(port)
    # counts are integers in the document (and so in JSON), not floats
    counts = [(g, n) for g, n, v in entries(doc) if MEASURES[n].kind is Kind.COUNT]
    assert counts and all(isinstance(doc[g][n], int) for g, n in counts)
    assert json.loads(to_json_text(doc))["trades"]["trades"] == 2


def test_without_a_benchmark_the_summary_says_so() -> None:
    doc = statistics_document(_daily(bench=False), _fills())
    assert doc["benchmark"] is None and not [g for g in doc if g.startswith("excess")]
    rows = summary_rows(doc)
    assert ("benchmark", "", "none: the backtest ran without a benchmark (no excess-return figures)") in rows
    assert ("trades", "trades", "2") in rows and ("portfolio", "trading_days", "20") in rows
