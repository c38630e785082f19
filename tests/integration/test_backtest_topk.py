"""TopkDropout rules on the real csi300 data (H1 2020): limits, suspensions, T+1 and holding, trade unit,
costs, the per-board limit fallback, bad input. (Equivalence with pyqlib: test_backtest_vs_qlib.py.)

This store keeps ``$change`` in percent; the market arrays and the limit threshold are fractions (0.095).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from hikyuu_qlib.backtest import (
    BacktestConfig,
    BacktestResult,
    MarketArrays,
    load_market,
    run_topk_backtest,
)
from hikyuu_qlib.backtest.rules import board_thresholds
from hikyuu_qlib.backtest.topk import rank_desc
from hikyuu_qlib.domain import DateRange, InvalidInputError
from hikyuu_qlib.stores.hikyuu.bonds import read_zh_bond10
from hikyuu_qlib.stores.qlib import QlibStore

DATES = DateRange.of("2020-01-01", "2020-06-30")
LIMIT = 0.095


@pytest.fixture(scope="module")
def market(qlib_dir: Path) -> MarketArrays:
    store = QlibStore.open(qlib_dir)
    codes = store.members("csi300", DATES)["code"].unique().to_list()
    return load_market(store, codes, DATES)


def predictions(market: MarketArrays, score: np.ndarray) -> pl.DataFrame:
    """Scores (day × stock) traded on ``market.dates``: stamped on each day's signal date."""
    rows, cols = np.nonzero(~np.isnan(score))
    return pl.DataFrame(
        {
            "datetime": pl.Series(market.signal_dates[rows]).cast(pl.Datetime("ms")),
            "code": [market.codes[j] for j in cols],
            "score": score[rows, cols],
        }
    )


def base_scores(market: MarketArrays, seed: int = 5) -> np.ndarray:
    score = np.random.default_rng(seed).standard_normal((len(market.dates), len(market.codes)))
    score[:, np.isnan(market.close).all(axis=0)] = np.nan  # codes without data are not predicted
    return score


def trades_of(result: BacktestResult, code: str, side: str) -> list[np.datetime64]:
    picked = result.trades.filter((pl.col("code") == code) & (pl.col("side") == side))
    return [np.datetime64(d, "ms") for d in picked["datetime"].to_list()]


def event(market: MarketArrays, mask: np.ndarray, first: int = 3) -> tuple[int, int]:
    """The first (day, stock) of ``mask`` from day ``first`` on whose previous ``first`` days trade freely."""
    free = (np.abs(np.nan_to_num(market.change)) < LIMIT) & (market.volume > 0)
    for i, j in np.argwhere(mask):
        if i >= first and free[i - first : i, j].all():
            return int(i), int(j)
    raise AssertionError("no such event in the data")


def test_limit_up_is_not_bought(market: MarketArrays) -> None:
    i, j = event(market, market.change >= LIMIT)
    score = base_scores(market)
    score[i, j] = 100.0  # the best stock on the limit-up day
    preds = predictions(market, score)
    code, day = market.codes[j], market.dates[i]
    config = BacktestConfig(topk=10, n_drop=3, limit_threshold=LIMIT)
    assert day not in trades_of(run_topk_backtest(preds, market, config), code, "buy")
    free = run_topk_backtest(preds, market, dataclasses.replace(config, limit_threshold=None))
    assert day in trades_of(free, code, "buy")


def test_limit_down_is_not_sold(market: MarketArrays) -> None:
    i, j = event(market, market.change <= -LIMIT)
    score = base_scores(market)
    score[i - 2 : i, j] = 100.0  # bought two days before
    score[i:, j] = -100.0  # the worst from the limit-down day on
    preds = predictions(market, score)
    code, day = market.codes[j], market.dates[i]
    config = BacktestConfig(topk=10, n_drop=3, limit_threshold=LIMIT)
    sold = trades_of(run_topk_backtest(preds, market, config), code, "sell")
    later = np.flatnonzero(np.abs(np.nan_to_num(market.change[i + 1 :, j])) < LIMIT)
    assert sold[0] == market.dates[i + 1 + later[0]]  # on the first day it trades again
    free = run_topk_backtest(preds, market, dataclasses.replace(config, limit_threshold=None))
    assert trades_of(free, code, "sell")[0] == day


def test_suspension(market: MarketArrays) -> None:
    i, j = event(market, market.volume == 0)
    score = base_scores(market)
    score[i - 2 : i, j] = 100.0
    score[i:, j] = -100.0
    preds = predictions(market, score)
    code = market.codes[j]
    # Qlib's rule: only a NaN close suspends; this store carries the close through with zero volume
    qlib_like = run_topk_backtest(preds, market, BacktestConfig(topk=10, n_drop=3, limit_threshold=None))
    assert trades_of(qlib_like, code, "sell")[0] == market.dates[i]
    halted = BacktestConfig(topk=10, n_drop=3, limit_threshold=None, zero_volume_suspended=True)
    result = run_topk_backtest(preds, market, halted)
    resumed = i + int(np.argmax(market.volume[i:, j] > 0))
    assert trades_of(result, code, "sell")[0] == market.dates[resumed]
    held = result.positions.filter(pl.col("code") == code).sort("datetime")
    assert held["datetime"].max() == market.dates[resumed - 1]


def test_code_without_data_is_never_bought_but_takes_its_share(market: MarketArrays) -> None:
    absent = int(np.flatnonzero(np.isnan(market.close).all(axis=0))[0])
    score = base_scores(market)
    score[:, absent] = 100.0  # always the favourite, never tradable (suspended, as in Qlib)
    result = run_topk_backtest(predictions(market, score), market, BacktestConfig(topk=2, n_drop=1))
    assert market.codes[absent] not in result.trades["code"].to_list()
    first = result.trades.sort("datetime").filter(pl.col("datetime") == pl.col("datetime").min())
    assert first.height == 1  # two buys chosen, one of them untradable
    assert first["value_yuan"].item() == pytest.approx(0.95e8 / 2, rel=0.01)  # cash split over both


def test_t_plus_one_and_hold_threshold(market: MarketArrays) -> None:
    preds = predictions(market, base_scores(market))
    index = {d: k for k, d in enumerate(market.dates.astype("datetime64[ms]").tolist())}
    for hold in (1, 3):
        result = run_topk_backtest(preds, market, BacktestConfig(topk=10, n_drop=5, hold_thresh=hold))
        legs = result.trades.sort("datetime").group_by("code", maintain_order=True).agg("datetime", "side")
        spans = []
        for days, sides in zip(legs["datetime"].to_list(), legs["side"].to_list(), strict=True):
            for k in range(1, len(days)):
                if sides[k - 1] == "buy" and sides[k] == "sell":
                    spans.append(index[days[k]] - index[days[k - 1]])
        assert spans and min(spans) == hold  # never sold the day it was bought, nor before hold_thresh


def test_trade_unit_and_costs(market: MarketArrays) -> None:
    preds = predictions(market, base_scores(market))
    config = BacktestConfig(topk=20, n_drop=5, min_cost=2000.0, stamp_tax=0.001)
    trades = run_topk_backtest(preds, market, config).trades
    buy = (trades["side"] == "buy").to_numpy()
    # bought in whole lots of original shares (sold whole; the factor may have moved since)
    shares = trades["shares"].to_numpy()[buy]
    assert np.abs(shares - np.round(shares / 100) * 100).max() < 1e-6
    value, cost = trades["value_yuan"].to_numpy(), trades["cost_yuan"].to_numpy()
    assert np.allclose(cost[buy], np.maximum(value[buy] * 0.0005, 2000.0))
    assert np.allclose(cost[~buy], np.maximum(value[~buy] * 0.0015, 2000.0) + value[~buy] * 0.001)
    assert (cost[buy] == 2000.0).any() and (cost[buy] > 2000.0).any()
    fractional = run_topk_backtest(preds, market, dataclasses.replace(config, trade_unit=None)).trades
    assert np.abs(fractional.filter(pl.col("side") == "buy")["shares"] % 100).max() > 1.0


def test_board_limits_when_the_store_has_no_change(market: MarketArrays) -> None:
    i, j = event(market, market.change >= LIMIT)
    no_change = dataclasses.replace(market, has_change=False, change=np.full_like(market.change, np.nan))
    score = base_scores(market)
    score[i, j] = 100.0
    preds = predictions(no_change, score)
    config = BacktestConfig(topk=10, n_drop=3)  # threshold given: per-board limits from the close
    assert market.dates[i] not in trades_of(
        run_topk_backtest(preds, no_change, config), market.codes[j], "buy"
    )
    dates = np.array(["2020-08-21", "2020-08-24"], dtype="datetime64[ms]")
    got = board_thresholds(["SH600000", "SZ300750", "SH688001", "BJ430047"], dates)
    assert got.tolist() == [[0.095, 0.095, 0.195, 0.295], [0.095, 0.195, 0.195, 0.295]]


def test_statistics_of_a_run(market: MarketArrays, hikyuu_dir: Path) -> None:
    result = run_topk_backtest(
        predictions(market, base_scores(market)), market, BacktestConfig(topk=20, n_drop=5)
    )
    stats = result.statistics(risk_free=read_zh_bond10(hikyuu_dir))
    daily = result.daily
    excess = (daily["return"] - daily["bench_return"] - daily["cost"]).to_numpy()
    assert stats["excess_return_with_cost"]["mean"] == pytest.approx(excess.mean())
    assert 0.01 < stats["portfolio"]["risk_free_annual"] < 0.06
    final = daily["account"][-1] / 1e8 - 1
    assert stats["portfolio"]["total_return"] == pytest.approx(final)
    trips = result.trade_statistics()
    assert trips["trades"] > 10 and 0 < trips["win_rate"] < 1 and trips["avg_loss"] < 0 < trips["avg_win"]


def test_ties_are_ranked_as_pandas_ranks_them() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = rng.choice([0.0, -0.0, 1.5, -2.0, np.nan, 0.25], size=int(rng.integers(5, 400)))
        expected = pd.Series(values).sort_values(ascending=False).index.to_numpy()
        assert rank_desc(np.arange(len(values), dtype=np.int64), values).tolist() == expected.tolist()


def test_bad_input(market: MarketArrays) -> None:
    preds = predictions(market, base_scores(market))
    with pytest.raises(InvalidInputError, match="score"):
        run_topk_backtest(preds.drop("score"), market, BacktestConfig(topk=5, n_drop=1))
    with pytest.raises(InvalidInputError, match="not in the market"):
        odd = preds.head(1).with_columns(code=pl.lit("SH999999"))
        run_topk_backtest(pl.concat([preds, odd]), market, BacktestConfig(topk=5, n_drop=1))
    with pytest.raises(InvalidInputError, match="topk"):
        BacktestConfig(topk=0, n_drop=1)
    with pytest.raises(InvalidInputError, match="deal_price"):
        BacktestConfig(topk=5, n_drop=1, deal_price="vwap")  # type: ignore[arg-type]
