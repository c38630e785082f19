"""``run_report``: from a finished backtest (and optionally its predictions) to the report directory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from hikyuu_qlib.backtest.report.ic import forward_returns, information_coefficient
from hikyuu_qlib.backtest.report.writer import ReportPaths, write_report
from hikyuu_qlib.domain import DateRange, InvalidInputError
from hikyuu_qlib.ports import MarketData

log = logging.getLogger(__name__)


class Reportable(Protocol):
    """A backtest outcome: the portfolio engine's ``BacktestResult`` or the trading system's result.

    ``statistics()`` and ``trade_statistics()`` are used when the object has them.
    """

    @property
    def daily(self) -> pl.DataFrame: ...

    @property
    def positions(self) -> pl.DataFrame: ...

    @property
    def trades(self) -> pl.DataFrame: ...


def collect_statistics(result: Reportable, risk_free: pl.DataFrame | None = None) -> dict[str, Any]:
    """``statistics(risk_free)`` (tables or scalars) plus ``trade_statistics()`` as the "trades" table."""
    out: dict[str, Any] = {}
    stats_fn: Callable[..., Mapping[str, Any]] | None = getattr(result, "statistics", None)
    if callable(stats_fn):
        out.update(stats_fn(risk_free) if risk_free is not None else stats_fn())
    trade_fn: Callable[[], Mapping[str, Any]] | None = getattr(result, "trade_statistics", None)
    if callable(trade_fn):
        out["trades"] = dict(trade_fn())
    return out


def prediction_ic(predictions: pl.DataFrame, store: MarketData) -> pl.DataFrame:
    """Daily IC / rank IC of ``predictions`` (datetime, code or instrument, score) on the store's labels."""
    code_col = "code" if "code" in predictions.columns else "instrument"
    if code_col not in predictions.columns or "datetime" not in predictions.columns:
        raise InvalidInputError(
            f"predictions need datetime, code (or instrument) and score columns, got {predictions.columns}"
        )
    codes = predictions[code_col].cast(pl.String).str.to_uppercase().unique().sort().to_list()
    span = predictions.select(pl.col("datetime").min(), pl.col("datetime").max().alias("hi")).row(0)
    labels = forward_returns(store, codes, DateRange.of(span[0], span[1]))
    return information_coefficient(predictions, labels)


def run_report(
    out_dir: Path,
    result: Reportable,
    *,
    predictions: pl.DataFrame | None = None,
    store: MarketData | None = None,
    benchmark: str | None = None,
    title: str = "Backtest report",
    subtitle: str = "",
    statistics: Mapping[str, Any] | None = None,
    risk_free: pl.DataFrame | None = None,
) -> ReportPaths:
    """Write ``report.html``, the PNGs, ``daily.parquet``/``daily.csv`` and the tables into ``out_dir``.

    With ``predictions`` and ``store`` the rolling IC is computed against the store's forward returns
    (Qlib's label); ``statistics`` overrides what the result's own statistics methods give, which get
    ``risk_free`` (``datetime, rate``, e.g. ``backtest.stats.read_zh_bond10``) for the Sharpe ratio.
    """
    stats = dict(statistics) if statistics is not None else collect_statistics(result, risk_free)
    ic = None
    if predictions is not None:
        if store is None:
            raise InvalidInputError("the IC of predictions needs the market data store for labels")
        ic = prediction_ic(predictions, store)
        if ic.height:
            stats.setdefault("ic", {
                "IC mean": ic["ic"].mean(), "IC std": ic["ic"].std(),
                "rank IC mean": ic["rank_ic"].mean(), "rank IC std": ic["rank_ic"].std(),
                "ICIR": _ratio(ic["ic"]), "rank ICIR": _ratio(ic["rank_ic"]), "days": ic.height,
            })
        else:
            log.warning("no day had enough scored and labelled codes for an IC")
    return write_report(out_dir, result.daily, stats, ic=ic, positions=result.positions, trades=result.trades,
                        title=title, subtitle=subtitle, benchmark=benchmark)


def _ratio(s: pl.Series) -> float | None:
    mean, std = s.mean(), s.std()
    if not isinstance(mean, float) or not isinstance(std, float) or std == 0.0:
        return None
    return mean / std
