"""A short rolling workflow on real data: 60 CSI300 members of the Qlib store (a copy holding them and the
benchmark, universe ``all``), three 20-day windows."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

CODES = [
    "SH600000",
    "SH600008",
    "SH600009",
    "SH600010",
    "SH600015",
    "SH600016",
    "SH600018",
    "SH600019",
    "SH600023",
    "SH600028",
    "SH600029",
    "SH600030",
    "SH600031",
    "SH600036",
    "SH600038",
    "SH600048",
    "SH600050",
    "SH600066",
    "SH600068",
    "SH600085",
    "SH600089",
    "SH600100",
    "SH600104",
    "SH600109",
    "SH600111",
    "SH600115",
    "SH600118",
    "SH600153",
    "SH600157",
    "SH600170",
    "SH600177",
    "SH600188",
    "SH600196",
    "SH600208",
    "SH600221",
    "SH600271",
    "SH600276",
    "SH600309",
    "SH600332",
    "SH600340",
    "SH600352",
    "SH600362",
    "SH600369",
    "SH600372",
    "SH600373",
    "SH600383",
    "SH600406",
    "SH600415",
    "SH600489",
    "SH600518",
    "SH600519",
    "SH600535",
    "SH600547",
    "SH600570",
    "SH600583",
    "SH600585",
    "SH600588",
    "SH600637",
    "SH600660",
    "SH600663",
]
TEST_START, TEST_END = "2016-10-10", "2016-12-30"


def write_workflow(path: Path, qlib_dir: Path, runs: Path, *, static: bool = True) -> Path:
    path.write_text(
        f"""source: qlib:{qlib_dir}
universe: all
model: {{name: rolling-test, params: {{lambda_l1: 1.0, lambda_l2: 1.0, num_leaves: 15, learning_rate: 0.05}}}}
segments:
  train: 2015-07-01:2016-06-30
  valid: 2016-07-01:2016-09-30
  test: {TEST_START}:{TEST_END}
strategy: {{topk: 10, n_drop: 2}}
backtest: {{benchmark: SH000300}}
rolling: {{step: 20, mode: sliding, compare_static: {str(static).lower()}}}
outputs: {{dir: {runs}, report: false}}
"""
    )
    return path


def small_store(qlib_dir: Path, dest: Path) -> Path:
    """A Qlib provider directory holding :data:`CODES` (universe ``all``) and the benchmark SH000300."""
    (dest / "calendars").mkdir(parents=True)
    (dest / "instruments").mkdir()
    shutil.copy(qlib_dir / "calendars" / "day.txt", dest / "calendars" / "day.txt")
    present = {c for c in CODES if (qlib_dir / "features" / c.lower()).is_dir()}  # some are delisted
    lines = (qlib_dir / "instruments" / "all.txt").read_text().splitlines()
    spans = [line for line in lines if line.split("\t", 1)[0].upper() in present]
    (dest / "instruments" / "all.txt").write_text("\n".join(spans) + "\n")
    for code in [*sorted(present), "SH000300"]:
        shutil.copytree(qlib_dir / "features" / code.lower(), dest / "features" / code.lower())
    return dest


def test_days(qlib_dir: Path) -> list[str]:
    """The store's trading days of the test span, read from its calendar file."""
    days = (qlib_dir / "calendars" / "day.txt").read_text().split()
    return [d for d in days if TEST_START <= d <= TEST_END]


def assert_tiles(preds: pl.DataFrame, qlib_dir: Path) -> None:
    """One score per (day, code), and a score on every trading day of the test span, none outside."""
    assert preds.columns == ["datetime", "code", "score"]
    assert preds.select(pl.struct("datetime", "code").is_duplicated().any()).item() is False
    days = sorted({d.strftime("%Y-%m-%d") for d in preds["datetime"].to_list()})
    assert days == test_days(qlib_dir)
