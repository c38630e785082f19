"""``hq data`` on the shared Hikyuu store as a new user meets it: stock.db lists 4,729 codes, the HDF5
files hold 8 tables; the others are "without bars", not failures."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from cli_support import run_hq_here

from hikyuu_qlib.stores.qlib import QlibStore

WITH_DATA = ["SH000001", "SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002", "SZ000004", "SZ000005"]
ODD = "odd #1?x=2&y=%41 d 数据 é"


def hq(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env["HQ_HOME"] = str(home)
    return run_hq_here(*args, env=env)


# -- point 1: listed codes without a table -----------------------------------------------------------------


def test_stocks_filter_on_has_data(hikyuu_dir: Path, tmp_path: Path) -> None:
    source = f"hikyuu:{hikyuu_dir}"
    with_data = hq(
        "data", "stocks", "--source", source, "--all", "--has-data", "--format", "json", home=tmp_path
    )
    assert with_data.returncode == 0, with_data.stderr
    doc = json.loads(with_data.stdout)
    assert [r["code"] for r in doc["data"]] == WITH_DATA and all(r["has_data"] for r in doc["data"])
    without = hq(
        "data", "stocks", "--source", source, "--all", "--no-data", "--format", "json", home=tmp_path
    )
    assert json.loads(without.stdout)["rows"] == 4729 - 8
    both = hq("data", "stocks", "--source", source, "--all", "--format", "json", home=tmp_path)
    assert json.loads(both.stdout)["rows"] == 4729  # no filter by default


def test_export_qlib_of_the_shared_store_exits_0_with_one_count_line(
    hikyuu_dir: Path, tmp_path: Path
) -> None:
    proc = hq(
        "data", "export-qlib", "--source", f"hikyuu:{hikyuu_dir}", "--out", str(tmp_path / "q"), home=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    counted = [ln for ln in lines if "no bars" in ln]
    assert len(counted) == 1 and "4721" in counted[0]
    assert len(lines) < 30 and "UnknownCodeError" not in proc.stdout + proc.stderr
    assert sorted(QlibStore.open(tmp_path / "q").instruments()) == WITH_DATA
    as_json = hq(
        "data",
        "export-qlib",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--out",
        str(tmp_path / "q"),
        "--format",
        "json",
        home=tmp_path,
    )
    assert as_json.returncode == 0
    doc = json.loads(as_json.stdout)
    assert doc["failed"] == {} and len(doc["without_bars"]) == 4721 and doc["exported"] == WITH_DATA


def test_export_qlib_real_failures_still_exit_5(hikyuu_dir: Path, tmp_path: Path) -> None:
    proc = hq(
        "data",
        "export-qlib",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--out",
        str(tmp_path / "q"),
        "--code",
        "SH600000",
        "--code",
        "SH600036",
        "--code",
        "SH999999",
        "--format",
        "json",
        home=tmp_path,
    )
    assert proc.returncode == 5
    doc = json.loads(proc.stdout)
    assert list(doc["failed"]) == ["SH999999"] and doc["without_bars"] == ["SH600036"]
    assert doc["exported"] == ["SH600000"]


def test_bars_of_a_code_without_bars_is_not_a_failure(hikyuu_dir: Path, tmp_path: Path) -> None:
    proc = hq(
        "data",
        "bars",
        "SH600000",
        "SH600036",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--start",
        "2011-12-01",
        "--format",
        "json",
        home=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["errors"] == {} and doc["without_bars"] == ["SH600036"] and doc["rows"] == 4
    assert "SH600036" in proc.stderr  # the one-line count names it
