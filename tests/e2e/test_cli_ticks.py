"""``hq data timeline`` and ``hq data trans`` on the real Hikyuu store (and refused on a Qlib store)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from cli_support import hq_env, run_hq_here


def test_timeline_and_ticks_as_json_and_parquet(hikyuu_dir: Path, tmp_path: Path) -> None:
    env = hq_env(tmp_path / "home")
    proc = run_hq_here(
        "data", "timeline", "SH600000", "SH000001", "--source", str(hikyuu_dir),
        "--start", "2019-02-01", "--end", "2019-02-01", "--format", "json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["rows"] == 480 and doc["columns"] == ["code", "datetime", "price", "volume"]
    assert doc["data"][0] == {
        "code": "SH600000",
        "datetime": "2019-02-01T09:30:00",
        "price": 10.76,
        "volume": 814700.0,
    }
    out = tmp_path / "ticks.parquet"
    proc = run_hq_here(
        "data", "trans", "SH600000", "SH600005", "--source", str(hikyuu_dir), "--out", str(out), env=env
    )
    assert proc.returncode == 0, proc.stderr[
        -2000:
    ]  # SH600005 has no tick table: without data, not a failure
    ticks = pl.read_parquet(out)
    assert ticks.height == 6223 and ticks["code"].unique().to_list() == ["SH600000"]
    assert set(ticks["direction"].cast(pl.String).unique()) == {"buy", "sell", "auction"}


def test_refused_where_there_are_no_such_tables(qlib_dir: Path, hikyuu_dir: Path, tmp_path: Path) -> None:
    env = hq_env(tmp_path / "home")
    proc = run_hq_here(
        "data", "trans", "SH600000", "--source", f"qlib:{qlib_dir}", "--format", "json", env=env
    )
    assert proc.returncode == 2
    assert "has no tick tables" in json.loads(proc.stdout)["error"]["message"]
    proc = run_hq_here(
        "data", "timeline", "SH600000", "--source", str(hikyuu_dir), "--start", "2030-01-01", env=env
    )
    assert proc.returncode == 0 and proc.stdout.split() == ["code", "datetime", "price", "volume"]  # no row
