"""Write a backtest report: ``report.html`` (self-contained), the chart PNGs and the daily frame."""

from __future__ import annotations

import html
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from hikyuu_qlib.backtest.formats import format_measure, percent
from hikyuu_qlib.backtest.measures import (
    GROUPS,
    LABEL_TEXT,
    has_benchmark,
    statistics_document,
    used_measures,
)
from hikyuu_qlib.backtest.report import charts
from hikyuu_qlib.backtest.report import html as report_html
from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.modelling.importance import KINDS, top

log = logging.getLogger(__name__)

DAILY_REQUIRED = ("datetime", "return", "cost", "turnover")
IC_REQUIRED = ("datetime", "ic")


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """Everything a report wrote."""

    html: Path
    daily_parquet: Path
    daily_csv: Path
    pngs: dict[str, Path] = field(default_factory=dict)
    tables: dict[str, Path] = field(default_factory=dict)


def check_daily(daily: pl.DataFrame) -> pl.DataFrame:
    """The daily frame sorted by datetime with numeric columns as Float64; raises on bad input."""
    missing = [c for c in DAILY_REQUIRED if c not in daily.columns]
    if missing:
        raise InvalidInputError(
            f"daily frame lacks column(s) {', '.join(missing)} (has: {', '.join(daily.columns)})"
        )
    if daily.height == 0:
        raise InvalidInputError("daily frame is empty: nothing to report")
    try:
        out = daily.with_columns(
            pl.col("datetime").cast(DATETIME),
            *[pl.col(c).cast(pl.Float64) for c in ("return", "cost", "turnover")],
        ).sort("datetime")
    except pl.exceptions.PolarsError as exc:
        raise InvalidInputError(f"daily frame has columns of the wrong type: {exc}") from exc
    if out["datetime"].is_duplicated().any():
        raise InvalidInputError("daily frame has repeated datetimes")
    if out.select(
        pl.any_horizontal(pl.col("return", "cost").is_null() | pl.col("return", "cost").is_nan()).any()
    ).item():
        raise InvalidInputError("daily frame has null or NaN return/cost values")
    return out


def _check_ic(ic: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in IC_REQUIRED if c not in ic.columns]
    if missing:
        have = ", ".join(ic.columns)
        raise InvalidInputError(f"IC frame lacks column(s) {', '.join(missing)} (has: {have})")
    return ic.with_columns(pl.col("datetime").cast(DATETIME)).sort("datetime")


def _atomic_write(path: Path, data: bytes | str) -> None:
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


HEADLINE = ("total_return", "cagr", "max_drawdown_compound", "sharpe", "mean_daily_turnover", "trading_days")
NO_BENCHMARK = (
    "No benchmark: the backtest ran without one, so there is no benchmark line and no excess-return figure."
)


def _headline(statistics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The key figures of the statistics document, under their names (nothing computed here)."""
    portfolio = statistics.get("portfolio")
    items: list[tuple[str, str]] = []
    if isinstance(portfolio, Mapping):
        items += [(name, format_measure(name, portfolio[name])) for name in HEADLINE if name in portfolio]
    bench = statistics.get("benchmark")
    if isinstance(bench, Mapping) and "total_return" in bench:
        items.insert(1, ("benchmark.total_return", format_measure("total_return", bench["total_return"])))
    ic = statistics.get("ic")
    if isinstance(ic, Mapping):
        items += [(f"ic.{name}", format_measure(name, ic[name])) for name in ("ic", "rank_ic") if name in ic]
    return items


def _yearly(daily: pl.DataFrame, with_benchmark: bool) -> pl.DataFrame:
    """Each year's compounded returns (total_return of the year's days) and the sum of its daily turnover."""
    columns = [
        ((1.0 + pl.col("return") - pl.col("cost")).product() - 1.0).alias("total_return"),
        ((1.0 + pl.col("return")).product() - 1.0).alias("total_return_before_costs"),
    ]
    if with_benchmark:
        bench = ((1.0 + pl.col("bench_return").fill_null(0.0)).product() - 1.0).alias(
            "benchmark_total_return"
        )
        columns.append(bench)
    columns += [pl.col("turnover").sum().alias("turnover_sum"), pl.len().alias("trading_days")]
    return (
        daily.group_by(pl.col("datetime").dt.year().alias("year"))
        .agg(columns)
        .sort("year")
        .with_columns(pl.col("year").cast(pl.String))
    )


def _yearly_table(frame: pl.DataFrame) -> str:
    """The yearly returns as percentages (each year's figures are fractions), days as counts."""
    shown = frame.with_columns(
        [pl.col(c).map_elements(percent, return_dtype=pl.String) for c in frame.columns
         if c not in ("year", "trading_days")]
    )  # fmt: skip
    return report_html.frame_table("Yearly (compounded within each year, after costs unless said)", shown)


def _ic_note(statistics: Mapping[str, Any]) -> str:
    ic = statistics.get("ic")
    if not isinstance(ic, Mapping):
        return ""
    first, last = (
        format_measure("first_day", ic.get("first_day")),
        format_measure("last_day", ic.get("last_day")),
    )
    days = format_measure("days", ic.get("days"))
    return (
        f"IC and Rank IC of the predictions against {LABEL_TEXT}, over {days} days from {first} to "
        f"{last} (the ic group of the statistics)."
    )


def write_report(
    out_dir: Path,
    daily: pl.DataFrame,
    statistics: Mapping[str, Any],
    *,
    ic: pl.DataFrame | None = None,
    positions: pl.DataFrame | None = None,
    trades: pl.DataFrame | None = None,
    title: str = "Backtest report",
    subtitle: str = "",
    benchmark: str | None = None,
    importance: Mapping[str, Mapping[str, float]] | None = None,
    comparison: pl.DataFrame | None = None,
) -> ReportPaths:
    """Write the report into ``out_dir`` (created if needed) and return the paths written.

    ``importance`` (the model's feature importance by kind) adds a chart of each kind's top features;
    ``comparison`` (measure, then one column per model: ``hq model compare``) adds its table.

    ``daily`` needs ``datetime, return`` (before costs), ``cost, turnover`` (fractions of the previous
    account) and may carry ``bench_return`` and any account columns; ``ic`` has ``datetime, ic`` and
    optionally ``rank_ic``. ``statistics`` values may be scalars or mappings (one table each).
    """
    daily = check_daily(daily)
    ic = _check_ic(ic) if ic is not None and ic.height else None
    if "portfolio" not in statistics:  # the caller's extras, with the document of the daily frame
        statistics = {**statistics_document(daily, benchmark=benchmark), **statistics}
    bench = statistics.get("benchmark")
    with_benchmark = isinstance(bench, Mapping) and has_benchmark(daily)
    if not with_benchmark:  # no benchmark line, no excess figure
        daily = daily.with_columns(pl.lit(None, pl.Float64).alias("bench_return"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    portfolio = statistics.get("portfolio")
    drawdown = portfolio.get("max_drawdown_compound") if isinstance(portfolio, Mapping) else None
    pngs: dict[str, bytes] = {
        "equity": charts.equity_chart(daily, benchmark),
        "drawdown": charts.drawdown_chart(daily, drawdown),
        "monthly_returns": charts.monthly_heatmap(daily),
        "turnover": charts.turnover_chart(daily),
    }
    if ic is not None:
        pngs["rolling_ic"] = charts.ic_chart(ic)
    for kind in importance or {}:
        assert importance is not None
        pngs[f"importance_{kind}"] = charts.importance_chart(top(importance, kind, 20), kind)
    png_paths = {}
    for name, data in pngs.items():
        png_paths[name] = out / f"{name}.png"
        _atomic_write(png_paths[name], data)
    tables: dict[str, Path] = {}
    for name, frame in (("trades", trades), ("positions", positions), ("ic", ic)):
        if frame is not None:
            tables[name] = out / f"{name}.parquet"
            frame.write_parquet(tables[name])
    daily.write_parquet(out / "daily.parquet")
    daily.write_csv(out / "daily.csv")
    span = f"{daily['datetime'][0]:%Y-%m-%d} to {daily['datetime'][-1]:%Y-%m-%d}"
    summary = report_html.kpis(_headline(statistics))
    if not with_benchmark:
        summary += f'<p class="note">{html.escape(NO_BENCHMARK)}</p>'
    equity_title = "Equity against the benchmark" if with_benchmark else "Equity (no benchmark)"
    ic_body = (
        report_html.image(pngs["rolling_ic"], "rolling IC")
        + f'<p class="note">{html.escape(_ic_note(statistics))}</p>'
        if ic is not None
        else '<p class="note">No IC: the report was written without predictions and labels.</p>'
    )
    notes = {**GROUPS, "benchmark": f"{GROUPS['benchmark']} ({format_measure('code', _code(bench))})"}
    sections = [
        report_html.section("summary", "Summary", summary),
        report_html.section("equity", equity_title, report_html.image(pngs["equity"], "equity curve")),
        report_html.section("drawdown", "Drawdown", report_html.image(pngs["drawdown"], "drawdown")),
        report_html.section("rolling-ic", "Rolling IC", ic_body),
        report_html.section(
            "monthly-returns",
            "Monthly returns",
            report_html.image(pngs["monthly_returns"], "monthly returns"),
        ),
        report_html.section("turnover", "Turnover", report_html.image(pngs["turnover"], "turnover")),
        report_html.section(
            "statistics",
            "Statistics",
            f'<div class="tables">{report_html.statistics_tables(statistics, notes)}'
            f"<div>{_yearly_table(_yearly(daily, with_benchmark))}</div></div>"
            + report_html.definitions_table(used_measures(statistics)),
        ),
    ]
    if importance:
        body = "".join(
            report_html.image(pngs[f"importance_{kind}"], f"importance {kind}")
            + f'<p class="note">{html.escape(kind)}: {html.escape(KINDS.get(kind, kind))}.</p>'
            for kind in importance
        )
        sections.append(report_html.section("importance", "Feature importance", body))
    if comparison is not None and comparison.height:
        sections.append(
            report_html.section(
                "comparison", "Model comparison", report_html.frame_table("Models side by side", comparison)
            )
        )
    if positions is not None and positions.height:
        last = positions
        if "datetime" in positions.columns:
            last = positions.filter(pl.col("datetime") == pl.col("datetime").max())
        sections.append(
            report_html.section(
                "positions", "Positions at the end", report_html.frame_table("Holdings", _shown(last))
            )
        )
    if trades is not None:
        sections.append(
            report_html.section(
                "trades", "Trades", report_html.frame_table("Trades", _shown(trades), limit=100)
            )
        )
    html_path = out / "report.html"
    _atomic_write(html_path, report_html.page(title, subtitle or span, sections))
    log.info("wrote report %s (%d days, %d charts)", html_path, daily.height, len(pngs))
    return ReportPaths(html_path, out / "daily.parquet", out / "daily.csv", png_paths, tables)


def _code(bench: Any) -> Any:
    return bench.get("code") if isinstance(bench, Mapping) else None


def _shown(frame: pl.DataFrame) -> pl.DataFrame:
    """A positions or trades table as the report shows it: traded units only (the adjusted ``*_adj``
    columns stay in the Parquet files)."""
    return frame.select([c for c in frame.columns if not c.endswith("_adj")])
