"""``hq demo``: the main job on the embedded default (the synthetic market), or on real data."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from hikyuu_qlib.app import open_market
from hikyuu_qlib.cli.output import OutputFormat, emit_json, frame_table, guarded, stdout_console
from hikyuu_qlib.factors.grouped import grouped_rolling_mean

log = logging.getLogger("hikyuu_qlib.cli")


@guarded
def demo(
    source: Annotated[
        str, typer.Option("--source", "-s", help="synthetic[:SEED], hikyuu:PATH or qlib:PATH")
    ] = "synthetic",
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the outputs")] = Path("hq-output/demo"),
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table or json")] = OutputFormat.table,
) -> None:
    """Load the whole market, forward-adjusted, compute MA20 and a market summary, and write them."""
    run_demo(source, out, fmt)


def run_demo(source: str, out: Path, fmt: OutputFormat) -> None:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with open_market(source) as md:
        stocks = md.stocks(valid=None)
        result = md.load_many(stocks["code"], adjust="forward", concurrency=4)
    timings["load_s"] = time.perf_counter() - t0
    bars = result.frame
    t1 = time.perf_counter()
    bars = bars.with_columns(grouped_rolling_mean(bars, "close", 20).alias("ma20"))
    timings["ma20_s"] = time.perf_counter() - t1
    summary = _summary(bars)
    out.mkdir(parents=True, exist_ok=True)
    bars_path = out / "bars.parquet"
    bars.write_parquet(bars_path)
    summary_path = out / "summary.csv"
    summary.write_csv(summary_path)
    doc = {
        "source": md.store.source,
        "stocks": stocks.height,
        "bars": bars.height,
        "first": bars["datetime"].min(),
        "last": bars["datetime"].max(),
        "failed_codes": result.error_messages(),
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "outputs": {"bars": str(bars_path), "summary": str(summary_path)},
        "top_by_1y_return": summary.head(10).to_dicts(),
    }
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    console = stdout_console()
    console.print(
        f"[bold]{doc['source']}[/bold]: {stocks.height} stocks, {bars.height:,} bars "
        f"from {doc['first']:%Y-%m-%d} to {doc['last']:%Y-%m-%d}; "
        f"loaded in {timings['load_s']:.2f}s, MA20 over all bars in {timings['ma20_s'] * 1000:.1f} ms"
    )
    console.print(frame_table(summary.head(10), title="top 10 by one-year return (forward-adjusted)"))
    for name, path in doc["outputs"].items():  # type: ignore[attr-defined]
        console.print(f"{name}: {path}")
    if result.errors:
        console.print(f"[yellow]{len(result.errors)} codes failed to load[/yellow] (see the log above)")


def _summary(bars: pl.DataFrame) -> pl.DataFrame:
    """Per code: last close, MA20, one-year return and annualised volatility."""
    last = bars["datetime"].max()
    year_ago = last.replace(year=last.year - 1) if last is not None else None  # type: ignore[union-attr]
    ret = pl.col("close").pct_change().over("code")
    return (
        bars.with_columns(ret.alias("ret"))
        .filter(pl.col("datetime") >= year_ago)
        .group_by("code", maintain_order=True)
        .agg(
            pl.col("datetime").last().alias("last_date"),
            pl.col("close").last().alias("close"),
            pl.col("ma20").last().alias("ma20"),
            (pl.col("close").last() / pl.col("close").first() - 1).alias("return_1y"),
            (pl.col("ret").std() * (238**0.5)).alias("volatility"),
        )
        .filter(pl.col("last_date") == last)
        .sort("return_1y", descending=True, nulls_last=True)
    )


__all__ = ["demo"]
