"""``run_report``: from a finished backtest (and optionally its predictions) to the report directory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from hikyuu_qlib.backtest.measures import ic_statistics, statistics_document
from hikyuu_qlib.backtest.report.ic import forward_returns, information_coefficient
from hikyuu_qlib.backtest.report.writer import ReportPaths, write_report
from hikyuu_qlib.domain import DateRange, InvalidInputError
from hikyuu_qlib.ports import FeatureSource

log = logging.getLogger(__name__)


class Reportable(Protocol):
    """A backtest outcome: the portfolio engine's ``BacktestResult`` or the trading system's result.

    Its ``statistics(risk_free)`` gives the statistics document when it has one; otherwise the
    document is built from ``daily``.
    """

    @property
    def daily(self) -> pl.DataFrame: ...

    @property
    def positions(self) -> pl.DataFrame: ...

    @property
    def trades(self) -> pl.DataFrame: ...


def collect_statistics(
    result: Reportable,
    risk_free: pl.DataFrame | None = None,
    ic: pl.DataFrame | None = None,
    benchmark: str | None = None,
) -> dict[str, Any]:
    """The statistics document of ``result`` (its own ``statistics(risk_free)`` when it has one), with
    the ``ic`` group of the daily IC and the benchmark's code."""
    stats_fn: Callable[..., Mapping[str, Any]] | None = getattr(result, "statistics", None)
    if callable(stats_fn):
        doc = dict(stats_fn(risk_free))
    else:
        doc = statistics_document(result.daily, benchmark=benchmark, risk_free=risk_free)
    if ic is not None and ic.height:
        doc["ic"] = ic_statistics(ic)
    bench = doc.get("benchmark")
    if isinstance(bench, dict) and bench.get("code") is None and benchmark:
        doc["benchmark"] = {**bench, "code": benchmark}
    return doc


def prediction_ic(predictions: pl.DataFrame, store: FeatureSource) -> pl.DataFrame:
    """Daily IC / Rank IC of ``predictions`` (datetime, code or instrument, score) against the model's
    label read from the feature source ``store`` (see :mod:`.ic`), over the predicted days."""
    code_col = "code" if "code" in predictions.columns else "instrument"
    if code_col not in predictions.columns or "datetime" not in predictions.columns:
        raise InvalidInputError(
            f"predictions need datetime, code (or instrument) and score columns, got {predictions.columns}"
        )
    codes = predictions[code_col].cast(pl.String).str.to_uppercase().unique().sort().to_list()
    span = predictions.select(pl.col("datetime").min(), pl.col("datetime").max().alias("hi")).row(0)
    labels = forward_returns(store, codes, DateRange.of(span[0], span[1]))
    ic = information_coefficient(predictions, labels)
    if ic.height == 0:
        log.warning("no day had a scored and labelled code for an IC")
    return ic


def run_report(
    out_dir: Path,
    result: Reportable,
    *,
    predictions: pl.DataFrame | None = None,
    store: FeatureSource | None = None,
    ic: pl.DataFrame | None = None,
    benchmark: str | None = None,
    title: str = "Backtest report",
    subtitle: str = "",
    statistics: Mapping[str, Any] | None = None,
    risk_free: pl.DataFrame | None = None,
    importance: Mapping[str, Mapping[str, float]] | None = None,
    comparison: pl.DataFrame | None = None,
) -> ReportPaths:
    """Write ``report.html``, the PNGs, ``daily.parquet``/``daily.csv`` and the tables into ``out_dir``.

    ``ic`` is the daily IC (:func:`prediction_ic`); without it, ``predictions`` and ``store`` give it.
    ``statistics`` is the statistics document to show (the one the caller printed and saved); without
    it, the result's own (:func:`collect_statistics`, with ``risk_free`` — ``datetime, rate``, e.g.
    a store's ``risk_free()`` — for the Sharpe ratio). ``importance`` and ``comparison``: see
    :func:`~hikyuu_qlib.backtest.report.writer.write_report`.
    """
    if ic is None and predictions is not None:
        if store is None:
            raise InvalidInputError("the IC of predictions needs the feature source for labels")
        ic = prediction_ic(predictions, store)
    stats = (
        dict(statistics) if statistics is not None else collect_statistics(result, risk_free, ic, benchmark)
    )
    return write_report(
        out_dir,
        result.daily,
        stats,
        ic=ic,
        positions=result.positions,
        trades=result.trades,
        title=title,
        subtitle=subtitle,
        benchmark=benchmark,
        importance=importance,
        comparison=comparison,
    )
