"""Equivalence with pyqlib: ``backtest_daily`` + ``TopkDropoutStrategy`` against ``run_topk_backtest``.

Same seeded predictions over csi300 (first half of 2020), same data, two configurations: Qlib's defaults,
and one that exercises the other paths (open price, only-tradable choice, trades at the "wrong" limit
allowed, a hold threshold, another limit). Daily returns, costs, turnover and benchmark match to 1e-6 per
day, and the held stocks match every day.

Our ``limit_threshold`` is a fraction on every store; pyqlib compares its threshold with ``$change`` as
stored, so it gets the threshold in the store's own units (this store keeps ``$change`` in percent: our
0.095 is pyqlib's 9.5). pyqlib's results are cached in pytest's cache directory, keyed by the parameters.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from hikyuu_qlib.backtest import BacktestConfig, run_topk_backtest
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.stores.qlib import QlibStore
from hikyuu_qlib.stores.qlib.change import DIVISOR

PRED_START, START, END = "2019-12-02", "2020-01-02", "2020-06-30"
CASES: dict[str, dict[str, Any]] = {
    "qlib_defaults": {"topk": 30, "n_drop": 5},
    "open_only_tradable": {
        "topk": 20,
        "n_drop": 4,
        "hold_thresh": 3,
        "only_tradable": True,
        "forbid_all_trade_at_limit": False,
        "deal_price": "open",
        "limit_threshold": 0.099,
        "min_cost": 50.0,
        "risk_degree": 0.9,
    },
}
STRATEGY_KEYS = ("topk", "n_drop", "hold_thresh", "only_tradable", "forbid_all_trade_at_limit", "risk_degree")
EXCHANGE_KEYS = ("deal_price", "limit_threshold", "open_cost", "close_cost", "min_cost")


def seeded_predictions(store: QlibStore, seed: int = 7) -> pl.DataFrame:
    """A random score for every csi300 member on every day (deterministic), one day dropped."""
    rows = store.features("csi300", ["$close"], DateRange.of(PRED_START, END)).select("datetime", "code")
    rng = np.random.default_rng(seed)
    preds = rows.with_columns(score=pl.Series(rng.standard_normal(rows.height)))
    # a day without predictions: the next trading day must not trade at all
    return preds.filter(pl.col("datetime") != pl.datetime(2020, 3, 2))


def in_store_units(case: dict[str, Any], store: QlibStore) -> dict[str, Any]:
    """``case`` for pyqlib: the limit threshold (ours, a fraction; default 0.095) in ``$change``'s stored unit."""
    threshold = BacktestConfig(**case).limit_threshold
    assert threshold is not None
    return {**case, "limit_threshold": threshold * DIVISOR[store.change_unit()]}


def qlib_run(
    pyqlib: Any, preds: pl.DataFrame, case: dict[str, Any]
) -> tuple[pd.DataFrame, dict[Any, list[str]]]:
    from qlib.contrib.evaluate import backtest_daily
    from qlib.contrib.strategy.signal_strategy import TopkDropoutStrategy

    signal = (
        preds.to_pandas()
        .rename(columns={"code": "instrument"})
        .astype({"datetime": "datetime64[ns]"})
        .set_index(["datetime", "instrument"])["score"]
        .sort_index()
    )
    strategy = TopkDropoutStrategy(signal=signal, **{k: case[k] for k in STRATEGY_KEYS if k in case})
    exchange = {k: case[k] for k in EXCHANGE_KEYS if k in case}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report, positions = backtest_daily(
            START, END, strategy=strategy, account=1e8, benchmark="SH000300", exchange_kwargs=exchange
        )
    held = {day: sorted(pos.get_stock_list()) for day, pos in positions.items()}
    return report, held


@pytest.fixture(scope="module")
def store(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


@pytest.mark.parametrize("name", sorted(CASES))
def test_daily_report_matches_pyqlib(
    name: str, store: QlibStore, pyqlib: Any, request: pytest.FixtureRequest
) -> None:
    case = CASES[name]
    assert store.change_unit() == "percent"  # the case this test is about
    qlib_case = in_store_units(case, store)
    assert qlib_case["limit_threshold"] in (9.5, 9.9)
    preds = seeded_predictions(store)
    key = json.dumps(
        {"case": qlib_case, "start": START, "end": END, "pred": PRED_START, "v": 1}, sort_keys=True
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    cache = request.config.cache.mkdir("backtest_vs_qlib") / f"{name}_{digest}.pkl"
    if cache.is_file():
        report, held = pickle.loads(cache.read_bytes())
    else:
        report, held = qlib_run(pyqlib, preds, qlib_case)
        cache.write_bytes(pickle.dumps((report, held)))

    ours = run_topk_backtest(preds, store, BacktestConfig(**case), DateRange.of(START, END))
    daily = ours.daily
    assert daily["datetime"].to_list() == [d.to_pydatetime() for d in report.index]
    assert daily["turnover"].sum() > 0.5, "the comparison must cover real trading"
    for ours_col, qlib_col in [
        ("return", "return"),
        ("cost", "cost"),
        ("turnover", "turnover"),
        ("bench_return", "bench"),
    ]:
        diff = np.abs(daily[ours_col].to_numpy() - report[qlib_col].to_numpy())
        assert diff.max() <= 1e-6, f"{ours_col}: max daily difference {diff.max():.3g} on day {diff.argmax()}"
    assert np.allclose(daily["account"].to_numpy(), report["account"].to_numpy(), rtol=1e-9)
    ours_held = ours.positions.group_by("datetime").agg(pl.col("code").sort()).sort("datetime")
    by_day = {d: c for d, c in zip(ours_held["datetime"].to_list(), ours_held["code"].to_list(), strict=True)}
    for day, codes in held.items():
        assert by_day.get(day.to_pydatetime(), []) == codes, f"held stocks differ on {day:%Y-%m-%d}"
    assert daily["holdings"].to_list() == [len(held[d]) for d in report.index]
    # the day after the missing prediction day does not trade
    assert daily.filter(pl.col("datetime") == pl.datetime(2020, 3, 3))["turnover"].item() == 0.0
