"""``hq backtest run --rebalance`` on both stores: fills only on rebalance days, holdings carried."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import polars as pl
import pytest
from cli_support import run_hq_here

from hikyuu_qlib.app import open_store
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.stores.qlib import QlibStore


def reversal(source: str, codes: list[str] | str, dates: DateRange) -> pl.DataFrame:
    """Minus the 5-day return as each day's score: of a few codes' bars, or of a Qlib universe's closes."""
    store = open_store(source)
    if isinstance(codes, str):
        assert isinstance(store, QlibStore)
        bars = store.features(codes, ["$close"], dates)
    else:
        bars = pl.concat([store.read_bars(c, dates=dates) for c in codes])
    score = -(pl.col("close") / pl.col("close").shift(5).over("code") - 1)
    return (
        bars.sort("code", "datetime")
        .with_columns(score.alias("score"))
        .drop_nulls("score")
        .select("datetime", "code", "score")
    )


def starts(calendar: list[dt.datetime], period: str) -> set[dt.datetime]:
    """The first trading day of each week or month, from the calendar by hand."""
    key = (lambda d: d.isocalendar()[:2]) if period == "week" else (lambda d: (d.year, d.month))
    return {d for prev, d in itertools.pairwise(calendar) if key(prev) != key(d)}


@pytest.mark.parametrize("kind", ["hikyuu", "qlib"])
def test_rebalance_trades_only_on_the_first_day_of_each_period(
    kind: str, hikyuu_dir: Path, qlib_dir: Path, tmp_path: Path
) -> None:
    if kind == "hikyuu":
        source, dates, period = f"hikyuu:{hikyuu_dir}", DateRange.of("2010-01-01", "2010-12-31"), "week"
        preds = reversal(
            source, ["SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002", "SZ000004"], dates
        )
        extra = ("--topk", "2", "--n-drop", "1", "--benchmark", "SH000001")
    else:
        source, dates, period = f"qlib:{qlib_dir}", DateRange.of("2020-01-01", "2020-12-31"), "month"
        preds = reversal(source, "csi300", dates)
        extra = ("--topk", "20", "--n-drop", "5")
    preds.write_parquet(tmp_path / "preds.parquet")
    calendar = open_store(source).calendar(dates=dates).to_list()
    fills = {}
    for rebalance in ("day", period):
        out = tmp_path / rebalance
        proc = run_hq_here(
            "backtest", "run", "--predictions", str(tmp_path / "preds.parquet"), "--source", source,
            "--rebalance", rebalance, *extra, "--out", str(out), "--format", "json",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        fills[rebalance] = set(pl.read_parquet(out / "trades.parquet")["datetime"].to_list())
    first = min(fills[period])
    assert fills[period] - {first} <= starts(calendar, period)
    assert len(fills[period]) >= 6 and len(fills["day"]) > 2 * len(fills[period])
    proc = run_hq_here("backtest", "run", "--predictions", str(tmp_path / "preds.parquet"), "--source", source,
                  "--rebalance", "fortnight", "--out", str(tmp_path / "bad"), "--format", "json")  # fmt: skip
    assert proc.returncode == 2 and "rebalance" in json.loads(proc.stdout)["error"]["message"]
