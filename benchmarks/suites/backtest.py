"""Backtest suite: TopkDropout(50, 5) on CSI300, ours vs pyqlib's ``backtest_daily``, and a parameter sweep.

Predictions (both engines get the same): a 20-day reversal score, ``-($close / Ref($close, 20) - 1)``
over the csi300 members. Full run: 2017-01-01 to 2020-12-31; ``--quick``: 2020 only.

* ``backtest_topk50_drop5``: one backtest including reading the market data (ours: ``run_topk_backtest``
  on the store; anchor: ``backtest_daily``, measured once in this run). Goal: ratio >= 30 with equal
  returns (``extra.max_abs_daily_return_diff`` <= 1e-6, ``extra.same_holdings``).
Our ``limit_threshold`` (default 0.095) is a fraction on every store; pyqlib compares its threshold with
``$change`` as stored, so it gets the same threshold in the store's own unit (9.5 on this percent store).

* ``backtest_sweep_20``: 20 (topk, n_drop) pairs with our engine (market read once); the anchor is an
  estimate, 20 x the pyqlib single-run time above (pyqlib is not run 20 times).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import polars as pl

from common import Result, data_root, timed
from hikyuu_qlib.backtest import BacktestConfig, load_market, run_on_grid, run_topk_backtest, score_grid
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.stores.qlib import QlibStore
from hikyuu_qlib.stores.qlib.change import DIVISOR

log = logging.getLogger(__name__)
SWEEP = [(k, d) for k in (10, 20, 30, 50, 80) for d in (1, 3, 5, 10)]


def reversal_predictions(store: QlibStore, start: str, end: str) -> pl.DataFrame:
    """``-(close / close 20 rows earlier - 1)`` per csi300 member and day, from a month before ``start``."""
    lo = np.datetime64(start, "D") - np.timedelta64(45, "D")
    frame = store.features("csi300", ["$close"], DateRange.of(str(lo), end))
    return (
        frame.sort(["code", "datetime"])
        .with_columns(
            score=-(pl.col("close") / pl.col("close").shift(20).over("code") - 1.0).cast(pl.Float64)
        )
        .filter(pl.col("score").is_not_null() & pl.col("score").is_not_nan())
        .select("datetime", "code", "score")
    )


def pyqlib_run(
    preds: pl.DataFrame, start: str, end: str, limit_threshold: float
) -> tuple[Any, dict[Any, int]]:
    """pyqlib's backtest (qlib already initialised): its report and the number of stocks held per day."""
    from qlib.contrib.evaluate import backtest_daily
    from qlib.contrib.strategy.signal_strategy import TopkDropoutStrategy

    signal = (
        preds.to_pandas()
        .rename(columns={"code": "instrument"})
        .astype({"datetime": "datetime64[ns]"})
        .set_index(["datetime", "instrument"])["score"]
        .sort_index()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report, positions = backtest_daily(
            start,
            end,
            strategy=TopkDropoutStrategy(signal=signal, topk=50, n_drop=5),
            account=1e8,
            exchange_kwargs={"limit_threshold": limit_threshold},
        )
    return report, {day: len(pos.get_stock_list()) for day, pos in positions.items()}


def run(quick: bool) -> list[Result]:
    start, end = ("2020-01-01", "2020-12-31") if quick else ("2017-01-01", "2020-12-31")
    root = data_root() / "qlib_cn"
    store = QlibStore.open(root)
    dates = DateRange.of(start, end)
    preds = reversal_predictions(store, start, end)
    config = BacktestConfig(topk=50, n_drop=5)
    run_topk_backtest(preds, store, config, dates)  # compile (numba caches on disk) and warm the page cache

    ours_s, ours = timed(lambda: run_topk_backtest(preds, QlibStore.open(root), config, dates), repeat=3)
    import qlib

    qlib.init(provider_uri=str(root), region="cn", kernels=1)  # not timed: a one-off start-up
    assert config.limit_threshold is not None
    qlib_limit = config.limit_threshold * DIVISOR[store.change_unit()]  # 9.5 on this percent store
    qlib_s, (report, held) = timed(lambda: pyqlib_run(preds, start, end, qlib_limit))
    diff = np.abs(ours.daily["return"].to_numpy() - report["return"].to_numpy())
    same_holdings = ours.daily["holdings"].to_list() == [held[d] for d in report.index]
    stats = ours.statistics()
    single = Result(
        name="backtest_topk50_drop5",
        ours_s=ours_s,
        anchor="pyqlib backtest_daily",
        anchor_s=qlib_s,
        goal_ratio=30.0,
        extra={
            "period": f"{start}:{end}",
            "days": ours.daily.height,
            "max_abs_daily_return_diff": float(diff.max()),
            "same_holdings": same_holdings,
            "equal_returns": bool(diff.max() <= 1e-6),
            "excess_annualized_with_cost": stats["excess_return_with_cost"]["annualized_return_sum"],
            "trades": ours.trades.height,
            "limit_threshold": {"ours": config.limit_threshold, "pyqlib": qlib_limit},
        },
    )

    def sweep() -> list[float]:
        market = load_market(QlibStore.open(root), preds["code"].unique().to_list(), dates, "SH000300")
        grid = score_grid(preds, market)
        out = []
        for topk, n_drop in SWEEP:
            result = run_on_grid(*grid, market, BacktestConfig(topk=topk, n_drop=n_drop))
            out.append(float(result.daily["account"][-1]))
        return out

    sweep_s, finals = timed(sweep, repeat=2)
    swept = Result(
        name="backtest_sweep_20",
        ours_s=sweep_s,
        anchor="20 x pyqlib backtest_daily (estimate from the single run)",
        anchor_s=20 * qlib_s,
        extra={
            "pairs": [list(p) for p in SWEEP],
            "final_account_min": min(finals),
            "final_account_max": max(finals),
        },
    )
    return [single, swept]
