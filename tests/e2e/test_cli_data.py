"""``hq data …`` through the real entrypoint (in this process: :func:`cli_support.run_hq_here`): JSON on
stdout only, errors naming the input, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from cli_support import run_hq_here

hq = run_hq_here


def test_stocks_json_is_one_document(hikyuu_dir: Path) -> None:
    proc = hq(
        "data",
        "stocks",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--market",
        "SZ",
        "--type",
        "a_share",
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    codes = {row["code"] for row in doc["data"]}
    assert "SZ000001" in codes and all(c.startswith("SZ") for c in codes)
    assert doc["rows"] == len(doc["data"]) > 100


def test_bars_json_with_a_bad_code_reports_it_and_keeps_the_rest(hikyuu_dir: Path) -> None:
    proc = hq(
        "data",
        "bars",
        "SH600000",
        "SH999999",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--start",
        "2011-12-01",
        "--end",
        "2011-12-06",
        "--format",
        "json",
    )
    assert proc.returncode == 5
    doc = json.loads(proc.stdout)  # stdout holds exactly one JSON document
    assert set(doc["errors"]) == {"SH999999"}
    last = doc["data"][-1]
    assert last["code"] == "SH600000" and last["datetime"].startswith("2011-12-06")
    assert (last["open"], last["high"], last["low"], last["close"]) == (8.76, 8.84, 8.70, 8.73)
    assert last["volume"] == 26_440_400
    assert last["amount"] == pytest.approx(232_130_000)
    assert "SH999999" in proc.stderr


def test_bars_parquet_and_csv_outputs(hikyuu_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bars.parquet"
    proc = hq(
        "data",
        "bars",
        "SZ000001",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--ktype",
        "week",
        "--adjust",
        "forward",
        "--format",
        "parquet",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    frame = pl.read_parquet(out)
    assert frame.height > 500 and frame["code"].unique().to_list() == ["SZ000001"]
    csv = hq(
        "data",
        "bars",
        "SZ000001",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--start",
        "2011-01-01",
        "--format",
        "csv",
    )
    assert csv.returncode == 0 and csv.stdout.splitlines()[0].startswith("code,datetime,open")


@pytest.mark.parametrize(
    ("args", "needle", "code"),
    [
        (["SH60000X"], "'SH60000X'", 2),  # every code failed, malformed: 2
        (["SH600000", "--start", "2012-01-01", "--end", "2011-01-01"], "inverted", 2),
        (["SH600000", "--ktype", "tick"], "'tick'", 2),
        (["SH600000", "--adjust", "sideways"], "'sideways'", 2),
    ],
)
def test_bad_input_names_the_input(hikyuu_dir: Path, args: list[str], needle: str, code: int) -> None:
    proc = hq("data", "bars", *args, "--source", f"hikyuu:{hikyuu_dir}")
    assert proc.returncode == code
    assert needle in proc.stderr


def test_missing_store_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    proc = hq("data", "stocks", "--source", f"hikyuu:{missing}")
    assert proc.returncode == 3
    assert str(missing) in proc.stderr


def test_info_json(qlib_dir: Path) -> None:
    proc = hq("data", "info", "--source", f"qlib:{qlib_dir}", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["calendar"]["days"] == 3966 and doc["calendar"]["first"].startswith("2010-01-04")
