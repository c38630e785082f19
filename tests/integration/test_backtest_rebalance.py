"""TopkDropout's rebalance setting on the real csi300 data (Q1 2020): weekly, monthly and every-N-days
portfolios trade on their rebalance days only and carry their holdings in between.

The expected rebalance dates are written out by hand from the 2020 calendar (the Spring Festival closed
the exchange from 2020-01-24 to 2020-01-31).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.backtest import BacktestConfig, MarketArrays, load_market, run_topk_backtest
from hikyuu_qlib.backtest.rebalance import check_rebalance, rebalance_days
from hikyuu_qlib.domain import DateRange, InvalidInputError
from hikyuu_qlib.stores.qlib import QlibStore

DATES = DateRange.of("2020-01-01", "2020-03-31")
FOUR = ("SH600000", "SH600036", "SZ000001", "SZ000002")
D = dt.datetime

#: The first trading day of each week of Q1 2020 (2020-01-02 is a Thursday: the first day traded).
WEEK_STARTS = [
    D(2020, 1, 2), D(2020, 1, 6), D(2020, 1, 13), D(2020, 1, 20), D(2020, 2, 3), D(2020, 2, 10),
    D(2020, 2, 17), D(2020, 2, 24), D(2020, 3, 2), D(2020, 3, 9), D(2020, 3, 16), D(2020, 3, 23),
    D(2020, 3, 30),
]  # fmt: skip
MONTH_STARTS = [D(2020, 1, 2), D(2020, 2, 3), D(2020, 3, 2)]


@pytest.fixture(scope="module")
def store(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


@pytest.fixture(scope="module")
def four(store: QlibStore) -> MarketArrays:
    market = load_market(store, list(FOUR), DATES, benchmark=None)
    assert not np.isnan(market.close).any(), "the four codes trade every day of Q1 2020"
    return market


def predictions(market: MarketArrays, seed: int = 7) -> tuple[pl.DataFrame, np.ndarray]:
    """Random scores for every day, stamped on the day before the day they trade on."""
    score = np.random.default_rng(seed).standard_normal((len(market.dates), len(market.codes)))
    rows, cols = np.nonzero(~np.isnan(score))
    frame = pl.DataFrame(
        {
            "datetime": pl.Series(market.signal_dates[rows]).cast(pl.Datetime("ms")),
            "code": [market.codes[j] for j in cols],
            "score": score[rows, cols],
        }
    )
    return frame, score


def _days(result_trades: pl.DataFrame) -> list[dt.datetime]:
    return sorted(set(result_trades["datetime"].to_list()))


def held_by_day(positions: pl.DataFrame) -> dict[dt.datetime, set[str]]:
    out: dict[dt.datetime, set[str]] = {}
    for day, code in positions.select("datetime", "code").iter_rows():
        out.setdefault(day, set()).add(code)
    return out


def test_weekly_rebalance_trades_on_the_first_trading_day_of_each_week(four: MarketArrays) -> None:
    preds, score = predictions(four)
    config = BacktestConfig(topk=2, n_drop=2, limit_threshold=None, benchmark=None, rebalance="week")
    weekly = run_topk_backtest(preds, four, config)
    daily = run_topk_backtest(preds, four, dataclasses.replace(config, rebalance="day"))
    assert set(_days(weekly.trades)) <= set(WEEK_STARTS)
    assert len(_days(daily.trades)) > 2 * len(_days(weekly.trades))  # the daily portfolio trades far more
    # with topk = n_drop = 2 of four codes, each rebalance holds the two best scores of the day before;
    # between rebalance days the holdings stay as they are
    dates = [d.astype("datetime64[ms]").astype(dt.datetime) for d in four.dates]
    held = held_by_day(weekly.positions)
    expected: set[str] = set()
    for i, day in enumerate(dates):
        if day in WEEK_STARTS:
            best = np.argsort(-score[i])[:2]
            expected = {four.codes[j] for j in best}
        assert held[day] == expected, day
    # the days with trades are exactly the week starts where the best two changed
    changed = [WEEK_STARTS[0]] + [b for a, b in itertools.pairwise(WEEK_STARTS) if held[a] != held[b]]
    assert _days(weekly.trades) == changed


def test_weekly_equals_daily_on_the_rebalance_days_predictions(four: MarketArrays) -> None:
    preds, _ = predictions(four, seed=11)
    config = BacktestConfig(topk=2, n_drop=1, limit_threshold=None, benchmark=None)
    weekly = run_topk_backtest(preds, four, dataclasses.replace(config, rebalance="week"))
    starts = pl.Series(WEEK_STARTS).cast(pl.Datetime("ms"))
    index = {d: i for i, d in enumerate(four.dates.astype("datetime64[ms]").astype(dt.datetime))}
    stamped = pl.Series(four.signal_dates[[index[d] for d in WEEK_STARTS]]).cast(pl.Datetime("ms"))
    assert starts.len() == stamped.len()
    only_then = preds.filter(pl.col("datetime").is_in(stamped.implode()))
    daily = run_topk_backtest(only_then, four, config)
    assert weekly.daily.equals(daily.daily)
    assert weekly.trades.equals(daily.trades)


def test_monthly_and_every_n_days(four: MarketArrays) -> None:
    preds, _ = predictions(four, seed=3)
    config = BacktestConfig(topk=2, n_drop=2, limit_threshold=None, benchmark=None)
    monthly = run_topk_backtest(preds, four, dataclasses.replace(config, rebalance="month"))
    assert set(_days(monthly.trades)) <= set(MONTH_STARTS) and _days(monthly.trades)[0] == MONTH_STARTS[0]
    every5 = run_topk_backtest(preds, four, dataclasses.replace(config, rebalance=5))
    dates = four.dates.astype("datetime64[ms]").astype(dt.datetime).tolist()
    assert set(_days(every5.trades)) <= set(dates[::5])
    one = run_topk_backtest(preds, four, dataclasses.replace(config, rebalance=1))
    assert one.daily.equals(run_topk_backtest(preds, four, config).daily)


def test_rebalance_days_rules() -> None:
    days = np.array(["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07", "2020-02-03"], "datetime64[ms]")
    previous = np.array(["2019-12-31", *days[:-1].astype(str)], "datetime64[ms]")
    signal = np.array([False, True, True, True, True])
    assert rebalance_days(days, previous, signal, "week").tolist() == [False, True, True, False, True]
    assert rebalance_days(days, previous, signal, "month").tolist() == [False, True, False, False, True]
    assert rebalance_days(days, previous, signal, 2).tolist() == [False, True, False, True, False]
    assert rebalance_days(days, previous, signal, "day").all()
    assert not rebalance_days(days, previous, np.zeros(5, bool), "week").any()
    assert check_rebalance("Week") == "week" and check_rebalance("10") == 10
    for bad in ("fortnight", 0, -1, True, 1.5):
        with pytest.raises(InvalidInputError, match="rebalance"):
            check_rebalance(bad)
    with pytest.raises(InvalidInputError, match="rebalance"):
        BacktestConfig(rebalance="quarter")  # type: ignore[arg-type]


def test_the_workflow_file_and_the_cli_take_the_rebalance(tmp_path: Path) -> None:
    from hikyuu_qlib.workflow.config import load_workflow

    example = Path(__file__).resolve().parents[2] / "examples" / "workflow_lightgbm_alpha158_csi300.yaml"
    text = example.read_text().replace("  n_drop: 5\n", "  n_drop: 5\n  rebalance: ${EVERY:-week}\n")
    path = tmp_path / "w.yaml"
    path.write_text(text)
    assert load_workflow(path, env={}).backtest.rebalance == "week"
    assert load_workflow(path, env={"EVERY": "5"}).backtest.rebalance == 5
    assert load_workflow(path, env={}).document()["strategy"]["rebalance"] == "week"
    with pytest.raises(InvalidInputError, match="rebalance"):
        load_workflow(path, env={"EVERY": "fortnight"})
