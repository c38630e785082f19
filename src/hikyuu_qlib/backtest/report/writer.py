"""Write a backtest report: ``report.html`` (self-contained), the chart PNGs and the daily frame."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from hikyuu_qlib.backtest.report import charts
from hikyuu_qlib.backtest.report import html as h
from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.domain.schema import DATETIME

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
    if out.select(pl.any_horizontal(pl.col("return", "cost").is_null() | pl.col("return", "cost").is_nan()
                                    ).any()).item():
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


def _headline(daily: pl.DataFrame) -> list[tuple[str, str]]:
    c = charts.curves(daily)
    years = max((daily["datetime"][-1] - daily["datetime"][0]).days / 365.25, 1 / 365.25)
    total = c["net"].cast(pl.Float64).to_numpy()[-1] - 1.0
    items = [
        ("total return after costs", f"{total * 100:.2f} %"),
        ("annualised return", f"{((1.0 + total) ** (1.0 / years) - 1.0) * 100:.2f} %"),
        ("max drawdown", f"{c['drawdown'].cast(pl.Float64).to_numpy().min() * 100:.2f} %"),
        ("mean daily turnover", f"{daily['turnover'].fill_null(0.0).to_numpy().mean() * 100:.2f} %"),
        ("trading days", f"{daily.height}"),
    ]
    if c["bench"].null_count() == 0:
        items.insert(1, ("benchmark return", f"{(c['bench'].to_numpy()[-1] - 1.0) * 100:.2f} %"))
    return items


def _yearly(daily: pl.DataFrame) -> pl.DataFrame:
    bench = (pl.col("bench_return").fill_null(0.0) if "bench_return" in daily.columns else pl.lit(None))
    return (
        daily.group_by(pl.col("datetime").dt.year().alias("year"))
        .agg(
            ((1.0 + pl.col("return") - pl.col("cost")).product() - 1.0).alias("return after costs"),
            ((1.0 + pl.col("return")).product() - 1.0).alias("return before costs"),
            ((1.0 + bench).product() - 1.0).alias("benchmark"),
            pl.col("turnover").sum().alias("turnover"),
            pl.len().alias("days"),
        )
        .sort("year")
        .with_columns(pl.col("year").cast(pl.String))
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
) -> ReportPaths:
    """Write the report into ``out_dir`` (created if needed) and return the paths written.

    ``daily`` needs ``datetime, return`` (before costs), ``cost, turnover`` (fractions of the previous
    account) and may carry ``bench_return`` and any account columns; ``ic`` has ``datetime, ic`` and
    optionally ``rank_ic``. ``statistics`` values may be scalars or mappings (one table each).
    """
    daily = check_daily(daily)
    ic = _check_ic(ic) if ic is not None and ic.height else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs: dict[str, bytes] = {
        "equity": charts.equity_chart(daily, benchmark),
        "drawdown": charts.drawdown_chart(daily),
        "monthly_returns": charts.monthly_heatmap(daily),
        "turnover": charts.turnover_chart(daily),
    }
    if ic is not None:
        pngs["rolling_ic"] = charts.ic_chart(ic)
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
    sections = [
        h.section("summary", "Summary", h.kpis(_headline(daily))),
        h.section("equity", "Equity against the benchmark", h.image(pngs["equity"], "equity curve")),
        h.section("drawdown", "Drawdown", h.image(pngs["drawdown"], "drawdown")),
        h.section("rolling-ic", "Rolling IC", h.image(pngs["rolling_ic"], "rolling IC") if ic is not None
                  else '<p class="note">No IC: the report was written without predictions and labels.</p>'),
        h.section("monthly-returns", "Monthly returns", h.image(pngs["monthly_returns"], "monthly returns")),
        h.section("turnover", "Turnover", h.image(pngs["turnover"], "turnover")),
        h.section("statistics", "Statistics",
                  f'<div class="tables">{h.statistics_tables(statistics)}'
                  f"<div>{h.frame_table('Yearly', _yearly(daily))}</div></div>"),
    ]
    if positions is not None and positions.height:
        last = positions
        if "datetime" in positions.columns:
            last = positions.filter(pl.col("datetime") == pl.col("datetime").max())
        sections.append(h.section("positions", "Positions at the end", h.frame_table("Holdings", last)))
    if trades is not None:
        sections.append(h.section("trades", "Trades", h.frame_table("Trades", trades, limit=100)))
    html_path = out / "report.html"
    _atomic_write(html_path, h.page(title, subtitle or span, sections))
    log.info("wrote report %s (%d days, %d charts)", html_path, daily.height, len(pngs))
    return ReportPaths(html_path, out / "daily.parquet", out / "daily.csv", png_paths, tables)
