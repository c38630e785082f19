"""``hq data`` on stores whose paths hold ``#``, ``?``, ``%``, ``&``, spaces and non-ASCII characters,
and read-only commands (and Python reads) that leave the data directory and HQ_HOME untouched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from cli_support import run_hq_here

from hikyuu_qlib.domain import StockCode
from hikyuu_qlib.stores.qlib import QlibStore

ODD = "odd #1?x=2&y=%41 d 数据 é"


def hq(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    env["HQ_HOME"] = str(home)
    return run_hq_here(*args, env=env)


# -- point 7: unusual paths, and read-only commands create nothing ----------------------------------------


PYTHON_READS = """
import asyncio, sys
from hikyuu_qlib import open_market, open_market_async
source, code, start = sys.argv[1:]
with open_market(source) as md:
    md.stocks(valid=None)
    md.calendar()
    assert md.bars([code], start=start).height >= 3
    assert md.load_many([code], adjust="forward", concurrency=2).ok
    assert sum(c.height for c in md.stream([code], adjust="backward")) > 0
    md.store.data_version()
async def main():
    async with open_market_async(source) as md:
        assert (await md.load_many([code], concurrency=2)).ok
asyncio.run(main())
"""


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``root`` with its size and mtime."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.stat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture()
def odd(hikyuu_dir: Path, qlib_dir: Path, tmp_path: Path) -> Path:
    """Copies of a Hikyuu store and a small Qlib store under a directory named with # ? % & spaces and
    non-ASCII characters."""
    root = tmp_path / ODD
    (root / "hikyuu").mkdir(parents=True)
    for name in ("stock.db", "sh_day.h5", "sz_day.h5"):
        shutil.copy(hikyuu_dir / name, root / "hikyuu" / name)
    qlib = root / "qlib"
    shutil.copytree(qlib_dir / "calendars", qlib / "calendars")
    (qlib / "instruments").mkdir()
    lines = (qlib_dir / "instruments" / "all.txt").read_text().splitlines()
    keep = [ln for ln in lines if ln.split("\t")[0] in {"SH600000", "SZ000001"}]
    (qlib / "instruments" / "all.txt").write_text("\n".join(keep) + "\n")
    for folder in ("sh600000", "sz000001"):
        shutil.copytree(qlib_dir / "features" / folder, qlib / "features" / folder)
    return root


@pytest.mark.parametrize(
    ("kind", "code", "start"), [("hikyuu", "SH600000", "2011-12-01"), ("qlib", "SZ000001", "2026-05-01")]
)
def test_odd_paths_open_and_read_only_commands_create_nothing(
    odd: Path, tmp_path: Path, kind: str, code: str, start: str
) -> None:
    home = tmp_path / f"home {ODD}"  # does not exist: a read-only command must not create it
    source = f"{kind}:{odd / kind}"
    before = _snapshot(tmp_path)
    info = hq("data", "info", "--source", source, "--format", "json", home=home)
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["source"] == f"{kind}:{(odd / kind).resolve()}" and doc["stocks"] >= 2
    stocks = hq("data", "stocks", "--source", source, "--all", "--format", "json", home=home)
    assert stocks.returncode == 0, stocks.stderr
    assert code in [r["code"] for r in json.loads(stocks.stdout)["data"]]
    bars = hq("data", "bars", code, "--source", source, "--start", start, "--format", "json", home=home)
    assert bars.returncode == 0, bars.stderr
    assert json.loads(bars.stdout)["rows"] >= 3
    table = hq("data", "stocks", "--source", source, home=home)
    assert table.returncode == 0, table.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
    reads = subprocess.run(
        [sys.executable, "-c", PYTHON_READS, source, code, start],
        env={**env, "HQ_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reads.returncode == 0, reads.stderr
    assert _snapshot(tmp_path) == before  # nothing created, nothing touched, in the data or in HQ_HOME
    assert not home.exists()
    out = odd / f"export {kind} ?#%"
    export = hq("data", "export-qlib", "--source", source, "--out", str(out), "--format", "json", home=home)
    assert export.returncode == 0, export.stderr
    assert code in json.loads(export.stdout)["exported"]
    exported = QlibStore.open(out).read_bars(StockCode.parse(code))
    assert (
        exported.height > 0
        and exported.filter(pl.col("datetime") >= pl.lit(start).str.to_datetime()).height >= 3
    )


def test_opening_a_store_never_creates_a_file(odd: Path, tmp_path: Path) -> None:
    # an SQLite URI built by hand cut the path at '#' and dropped '?mode=ro': SQLite then created an
    # empty database next to the data directory
    home = tmp_path / "home"
    before = _snapshot(tmp_path)
    for kind in ("hikyuu", "qlib"):
        hq("data", "info", "--source", f"{kind}:{odd / kind}", "--format", "json", home=home)
    assert _snapshot(tmp_path) == before and not home.exists()
