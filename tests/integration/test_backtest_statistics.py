"""One meaning per number, on real data: the report's IC is the model's test IC, positions and trades
are in traded units, a backtest without a benchmark says so, a degenerate model is never ``trained``.

Real stores only: the Qlib CN store, and the Hikyuu store's Qlib view (it has real suspensions, NaN
closes on days when a position is held).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.backtest import BacktestConfig, run_topk_backtest
from hikyuu_qlib.backtest.report import run_report
from hikyuu_qlib.domain import Adjust, DateRange, HQError, Segments, StockCode
from hikyuu_qlib.domain.model import ModelStatus
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling import metrics as model_metrics
from hikyuu_qlib.modelling.dataset import RAW_LABEL
from hikyuu_qlib.modelling.predictor import Predictor
from hikyuu_qlib.modelling.service import TrainSpec, train_and_register
from hikyuu_qlib.registry import LocalArtifactStore, ModelFilter, ModelRegistry
from hikyuu_qlib.stores.export import export_qlib
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.qlib import QlibStore

SEGMENTS = Segments.parse("2016-01-01:2017-06-30", "2017-07-01:2017-09-30", "2017-10-01:2017-12-31")
H1_2020 = DateRange.of("2020-01-01", "2020-06-30")


@pytest.fixture(scope="module")
def qlib(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("registry")
    registry = ModelRegistry(f"sqlite:///{root / 'registry.db'}").open()
    yield registry, LocalArtifactStore(root / "artifacts")
    registry.close()


def _universe(store: QlibStore, count: int) -> Universe:
    full = Universe.from_store(store, "csi300")
    codes = full.members_between(DateRange.of("2016-01-01", "2017-12-31"))[:count]
    return Universe(f"csi300-first{count}", full.membership.filter(pl.col("code").is_in(codes)))


def _random_predictions(store: QlibStore, dates: DateRange, seed: int = 3) -> pl.DataFrame:
    rows = store.features("csi300", ["$close"], dates).select("datetime", "code")
    return rows.with_columns(score=pl.Series(np.random.default_rng(seed).standard_normal(rows.height)))


def _table(page: str, caption: str) -> dict[str, str]:
    """``{name: printed value}`` of the report's table with ``caption``."""
    body = re.search(rf"<caption>{re.escape(caption)}</caption><tbody>(.*?)</tbody>", page)
    assert body is not None, caption
    return dict(re.findall(r"<tr><th>([^<]+)</th><td[^>]*>([^<]*)</td></tr>", body.group(1)))


def test_report_ic_is_the_models_test_ic(qlib: QlibStore, registry: Any, tmp_path: Path) -> None:
    """A real trained model (50 codes, 12 rounds): the report's IC and Rank IC over the test segment
    are the model's registered test figures, day by day and in summary, under the same names."""
    reg, artifacts = registry
    universe = _universe(qlib, 50)
    spec = TrainSpec("ic-check", SEGMENTS, num_threads=2, num_boost_round=12)
    outcome = train_and_register(spec, store=qlib, universe=universe, registry=reg, artifacts=artifacts)
    test = outcome.model.metrics["test"]
    preds = Predictor(reg, artifacts).predict(outcome.model.id, qlib, universe, SEGMENTS["test"])
    result = run_topk_backtest(preds, qlib, BacktestConfig(topk=10, n_drop=2, limit_threshold=9.5))
    paths = run_report(tmp_path, result, predictions=preds, store=qlib, benchmark="SH000300")
    # day by day: the model's own daily IC of its test segment (scores against the raw label)
    rows = outcome.data.view("test", "infer")
    scored = rows.select("datetime", "code", pl.col(RAW_LABEL).alias(model_metrics.LABEL)).with_columns(
        pl.Series(
            model_metrics.SCORE, outcome.result.booster.predict(rows.select(outcome.data.features).to_numpy())
        )
    )
    model_daily = model_metrics.daily_ic(scored)
    report_daily = pl.read_parquet(paths.tables["ic"])
    assert report_daily["datetime"].to_list() == model_daily["datetime"].to_list()
    assert report_daily["ic"].to_numpy() == pytest.approx(model_daily["ic"].to_numpy(), rel=1e-9, nan_ok=True)
    # in summary, printed under the model's names, with the days used
    from hikyuu_qlib.backtest.formats import format_measure

    page = paths.html.read_text(encoding="utf-8")
    shown = _table(page, "ic")
    for name in ("ic", "icir", "rank_ic", "rank_icir", "days"):
        assert shown[name] == format_measure(name, test[name]), name
    assert shown["first_day"] == "2017-10-09" and shown["last_day"] == "2017-12-29"
    statistics = result.statistics(ic=report_daily)
    for name in ("ic", "icir", "rank_ic", "rank_icir"):
        assert statistics["ic"][name] == pytest.approx(test[name], rel=1e-12), name


def test_one_name_per_definition_in_the_report(qlib: QlibStore, tmp_path: Path) -> None:
    """Sum-mode and compounded figures under distinct names, each figure of the statistics document in
    the report as printed by its kind, and a definition for every name used."""
    preds = _random_predictions(qlib, DateRange.of("2019-12-01", "2020-06-30"))
    result = run_topk_backtest(preds, qlib, BacktestConfig(topk=20, n_drop=4, limit_threshold=9.5), H1_2020)
    statistics = result.statistics()
    port = statistics["portfolio"]
    net = (result.daily["return"] - result.daily["cost"]).to_numpy()
    equity = np.cumprod(1 + net)
    assert port["total_return"] == pytest.approx(equity[-1] - 1)
    assert port["cagr"] == pytest.approx(equity[-1] ** (238 / len(net)) - 1)
    assert port["annualized_return_sum"] == pytest.approx(net.mean() * 238)
    assert port["max_drawdown_compound"] == pytest.approx((equity / np.maximum.accumulate(equity) - 1).min())
    total = np.cumsum(net)
    assert port["max_drawdown_sum"] == pytest.approx((total - np.maximum.accumulate(total)).min())
    assert port["cagr"] != pytest.approx(port["annualized_return_sum"], rel=0.01)
    from hikyuu_qlib.backtest.formats import format_measure

    paths = run_report(tmp_path, result, statistics=statistics, benchmark="SH000300")
    page = paths.html.read_text(encoding="utf-8")
    for group, values in statistics.items():
        if isinstance(values, dict):
            assert _table(page, group) == {k: format_measure(k, v) for k, v in values.items()}, group
    glossary = re.search(r"<caption>Definitions</caption>.*?<tbody>(.*?)</tbody>", page, re.S)
    assert glossary is not None
    defined = set(re.findall(r"<tr><th>([a-z_]+)</th>", glossary.group(1)))
    assert defined == {k for v in statistics.values() if isinstance(v, dict) for k in v}
    # the headline repeats the figures under the same names: nothing of its own
    kpis = dict(re.findall(r'<div class="kpi"><b>([^<]+)</b><span>([^<]+)</span></div>', page))
    assert kpis[format_measure("cagr", port["cagr"])] == "cagr"
    assert (
        kpis[format_measure("max_drawdown_compound", port["max_drawdown_compound"])]
        == "max_drawdown_compound"
    )
    assert "annualised return" not in page and "max drawdown<" not in page


def test_without_a_benchmark_nothing_pretends_to_be_one(qlib: QlibStore, tmp_path: Path) -> None:
    preds = _random_predictions(qlib, DateRange.of("2019-12-01", "2020-06-30"))
    with_bench = run_topk_backtest(
        preds, qlib, BacktestConfig(topk=20, n_drop=4, limit_threshold=9.5), H1_2020
    )
    config = BacktestConfig(topk=20, n_drop=4, limit_threshold=9.5, benchmark=None)
    alone = run_topk_backtest(preds, qlib, config, H1_2020)
    assert alone.daily["bench_return"].null_count() == alone.daily.height  # no flat line of zeros
    assert alone.daily["return"].to_list() == with_bench.daily["return"].to_list()
    statistics = alone.statistics()
    assert statistics["benchmark"] is None
    assert not [group for group in statistics if group.startswith("excess")]
    paths = run_report(tmp_path, alone, statistics=statistics)
    page = paths.html.read_text(encoding="utf-8")
    assert "No benchmark" in page and "excess_return" not in page and "Equity (no benchmark)" in page
    assert pl.read_parquet(paths.daily_parquet)["bench_return"].null_count() == alone.daily.height
    # with one, the excess figures differ from the absolute ones
    bench = with_bench.statistics()
    assert bench["benchmark"]["code"] == "SH000300"
    excess = bench["excess_return_with_cost"]["annualized_return_sum"]
    assert excess != pytest.approx(bench["portfolio"]["annualized_return_sum"], rel=0.01)


@pytest.fixture(scope="module")
def hikyuu_view(hikyuu_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[HikyuuStore, QlibStore]:
    """The Hikyuu store's Qlib view (forward-adjusted, ``$factor``), as ``hq`` exports it."""
    store = HikyuuStore.open(hikyuu_dir)
    out = tmp_path_factory.mktemp("hikyuu-view")
    codes = [StockCode.parse(c) for c in ["SH000001", *_HIKYUU_STOCKS]]
    export_qlib(store, out, adjust=Adjust.FORWARD, codes=codes)
    return store, QlibStore.open(out)


_HIKYUU_STOCKS = ["SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002", "SZ000004"]


def test_positions_and_trades_in_traded_units(hikyuu_view: tuple[HikyuuStore, QlibStore]) -> None:
    """Whole lots of traded shares at traded prices, never NaN, also on the suspended days (NaN close
    and ``$factor`` in the view) on which positions are held; adjusted figures in their own columns."""
    hikyuu, view = hikyuu_view
    dates = DateRange.of("2005-01-01", "2011-11-30")
    close = view.features(_HIKYUU_STOCKS, ["$close"], dates)
    preds = close.select("datetime", "code").with_columns(
        score=pl.Series(np.random.default_rng(5).standard_normal(close.height))
    )
    config = BacktestConfig(topk=3, n_drop=1, limit_threshold=0.095, benchmark="SH000001", account=1e7)
    result = run_topk_backtest(preds, view, config, dates)
    positions, trades = result.positions, result.trades
    assert positions.columns == [
        "datetime", "code", "shares", "price_yuan", "value_yuan", "weight", "accrued_yuan", "amount_adj",
        "price_adj",
    ]  # fmt: skip
    assert trades.columns == [
        "datetime", "code", "side", "shares", "price_yuan", "value_yuan", "cost_yuan", "accrued_yuan",
        "amount_adj", "price_adj",
    ]  # fmt: skip
    assert trades.height > 500 and positions["shares"].dtype == pl.Int64 == trades["shares"].dtype
    for frame in (positions, trades):
        assert frame.null_count().sum_horizontal().item() == 0
        assert not frame.select(pl.col(pl.Float64).is_nan().any()).row(0).count(True)
        assert (frame["shares"] % 100 == 0).all() and (frame["shares"] > 0).all()
    # held on suspended days: the view has no close (nor factor) there, the position keeps its shares
    halted = close.filter(pl.col("close").is_nan()).select("datetime", "code")
    held = positions.join(halted, on=["datetime", "code"])
    assert held.height > 10
    # a sell sells the shares bought; the engine's value is amount_adj × price_adj
    legs = trades.sort("datetime").group_by("code", maintain_order=True).agg("side", "shares")
    for sides, shares in zip(legs["side"].to_list(), legs["shares"].to_list(), strict=True):
        for k in range(1, len(sides)):
            if sides[k] == "sell":
                assert sides[k - 1] == "buy" and shares[k] == shares[k - 1]
    assert trades["value_yuan"].to_numpy() == pytest.approx(
        (trades["amount_adj"] * trades["price_adj"]).to_numpy()
    )
    # traded prices: a buy's price is the day's unadjusted close in the Hikyuu store
    buys = trades.filter(pl.col("side") == "buy")
    raw = pl.concat([hikyuu.read_bars(StockCode.parse(c), dates=dates) for c in _HIKYUU_STOCKS])
    priced = buys.join(raw.select("datetime", "code", "close"), on=["datetime", "code"])
    assert priced.height == buys.height
    assert priced["price_yuan"].to_numpy() == pytest.approx(priced["close"].to_numpy(), rel=2e-6)
    value = (buys["shares"] * buys["price_yuan"]).to_numpy()
    assert buys["value_yuan"].to_numpy() == pytest.approx(value, rel=1e-6)
    # the factor moved (dividends, bonus shares) while some positions were held: it shows as accrued
    sells = trades.filter(pl.col("side") == "sell")
    moved = sells.filter(pl.col("accrued_yuan").abs() > 0.01 * pl.col("value_yuan"))
    assert moved.height > 0
    assert (
        sells["value_yuan"] - sells["shares"] * sells["price_yuan"] - sells["accrued_yuan"]
    ).abs().max() <= 0.005  # accrued_yuan is in cents


def test_a_degenerate_model_is_never_trained(qlib: QlibStore, registry: Any) -> None:
    """Five codes, a few months: LightGBM's first tree does not split (one round, constant scores)."""
    reg, artifacts = registry
    universe = _universe(qlib, 5)
    segments = Segments.parse("2016-01-01:2016-06-30", "2016-07-01:2016-09-30", "2016-10-01:2016-12-31")
    spec = TrainSpec("degenerate", segments, num_threads=2, num_boost_round=20)
    with pytest.raises(HQError, match="degenerate") as caught:
        train_and_register(spec, store=qlib, universe=universe, registry=reg, artifacts=artifacts)
    records = reg.find(ModelFilter(name="degenerate"), limit=10).items
    assert len(records) == 1
    record = records[0]
    assert record.status is ModelStatus.FAILED and record.id in str(caught.value)
    assert "one boosting round" in record.tags["failure"] or "IC" in record.tags["failure"]
    assert record.metrics["best_iteration"] <= 1 or "ic" not in record.metrics
    assert not reg.find(ModelFilter(status=ModelStatus.TRAINED, name="degenerate"), limit=10).items
