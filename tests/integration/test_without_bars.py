"""Listed codes without data have no bars: they are counted as "without bars", never as failures.

The shared Hikyuu store's stock.db lists 4,729 stocks but its HDF5 files hold 8 day tables; the shared
Qlib store's csi300.txt names 38 delisted members that have no features folder.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from hikyuu_qlib.domain import (
    Adjust,
    LoadErrors,
    NoBarsError,
    StockCode,
    StockType,
    UnknownCodeError,
)
from hikyuu_qlib.domain.schema import STOCK_SCHEMA
from hikyuu_qlib.marketdata import AsyncMarketDataClient, MarketDataClient
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.qlib import QlibStore
from hikyuu_qlib.stores.source import SyntheticParams
from hikyuu_qlib.stores.synthetic import SyntheticStore

WITH_DATA = ["SH000001", "SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002", "SZ000004", "SZ000005"]


def _without_bars_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "without bars" in r.getMessage()]


# -- stocks(): has_data ----------------------------------------------------------------------------------


def test_hikyuu_stocks_say_which_codes_have_data(hikyuu_dir: Path) -> None:
    with HikyuuStore.open(hikyuu_dir) as store:
        frame = store.stocks(valid=None)
    assert frame.schema == pl.Schema(STOCK_SCHEMA)
    assert frame.height == 4729
    assert sorted(frame.filter(pl.col("has_data"))["code"].to_list()) == WITH_DATA
    with MarketDataClient(HikyuuStore.open(hikyuu_dir)) as md:
        assert md.stocks(valid=None, has_data=True)["code"].to_list() == WITH_DATA
        assert md.stocks(valid=None, has_data=False).height == 4729 - 8


def test_qlib_and_synthetic_stocks_have_the_column(qlib_dir: Path) -> None:
    frame = QlibStore.open(qlib_dir).stocks(valid=None)
    assert frame.schema == pl.Schema(STOCK_SCHEMA)
    assert frame.height == 756 and frame["has_data"].all()  # every all.txt code has a features folder
    synthetic = SyntheticStore(SyntheticParams(seed=3, stocks=20, years=1)).stocks(valid=None)
    assert synthetic.schema == pl.Schema(STOCK_SCHEMA) and synthetic["has_data"].all()


def test_qlib_listed_code_without_folder_is_without_bars(qlib_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "qlib"
    shutil.copytree(qlib_dir / "calendars", root / "calendars")
    (root / "instruments").mkdir()
    lines = (qlib_dir / "instruments" / "all.txt").read_text().splitlines()
    keep = [ln for ln in lines if ln.split("\t")[0] in {"SH600000", "SH600036"}]
    (root / "instruments" / "all.txt").write_text("\n".join(keep) + "\n")
    shutil.copytree(qlib_dir / "features" / "sh600000", root / "features" / "sh600000")
    store = QlibStore.open(root)  # SH600036 is in all.txt but has no features folder
    assert dict(store.stocks(valid=None).select("code", "has_data").iter_rows()) == {
        "SH600000": True,
        "SH600036": False,
    }
    with pytest.raises(NoBarsError, match="SH600036"):
        store.read_bars(StockCode.parse("SH600036"))
    with pytest.raises(UnknownCodeError, match="SH601318"):
        store.read_bars(StockCode.parse("SH601318"))
    frame, errors = store.read_many([StockCode.parse(c) for c in ("SH600000", "SH600036", "SH601318")])
    assert frame["code"].unique().to_list() == ["SH600000"]
    assert isinstance(errors["SH600036"], NoBarsError) and isinstance(errors["SH601318"], UnknownCodeError)


# -- the clients ----------------------------------------------------------------------------------------


def test_load_many_and_bars_count_codes_without_bars(
    hikyuu_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with MarketDataClient(HikyuuStore.open(hikyuu_dir), max_workers=2) as md:
        everything = md.stocks(valid=None)["code"]
        for concurrency in (1, 4):
            caplog.clear()
            result = md.load_many(everything, concurrency=concurrency)
            assert result.errors == {} and result.ok
            assert len(result.without_bars) == 4721 and "SH600036" in result.without_bars
            assert sorted(result.frame["code"].unique().to_list()) == WITH_DATA
            lines = _without_bars_lines(caplog)
            assert len(lines) == 1 and "4721" in lines[0]  # one line, not one per code
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        result = md.load_many(["SH600000", "SH600036", "SH999999"])
        assert set(result.errors) == {"SH999999"} and isinstance(result.errors["SH999999"], UnknownCodeError)
        assert result.without_bars == ("SH600036",)
        bars = md.bars(["SH600000", "SH600036"], start="2011-12-01", adjust="forward")
        assert bars["code"].unique().to_list() == ["SH600000"] and bars.height == 4
        with pytest.raises(LoadErrors) as info:
            md.bars(["SH600000", "SH999999"])
        assert set(info.value.errors) == {"SH999999"}


def test_stream_over_every_listed_code_skips_those_without_bars(
    hikyuu_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with MarketDataClient(HikyuuStore.open(hikyuu_dir)) as md:
        expected = md.bars(WITH_DATA)
        skipped = md.stocks(has_data=False).height
        caplog.clear()
        chunks = list(md.stream(md.stocks()["code"], chunk_rows=10_000))
    assert all(c.height <= 10_000 for c in chunks)
    assert pl.concat(chunks).equals(expected)
    lines = _without_bars_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith(f"{skipped} code(s) without bars")
    with MarketDataClient(HikyuuStore.open(hikyuu_dir)) as md, pytest.raises(LoadErrors, match="SH999999"):
        list(md.stream(["SH600036", "SH999999"]))  # unknown codes still fail


async def test_async_client_counts_codes_without_bars(hikyuu_dir: Path, qlib_dir: Path) -> None:
    async with AsyncMarketDataClient(HikyuuStore.open(hikyuu_dir), max_workers=2) as md:
        codes = (await md.stocks(has_data=None))["code"]
        result = await md.load_many(codes, concurrency=4)
        assert result.errors == {} and sorted(result.frame["code"].unique().to_list()) == WITH_DATA
        chunks = [c async for c in md.stream(codes, chunk_rows=50_000)]
        assert pl.concat(chunks).equals(result.frame)
        assert (await md.stocks(has_data=True))["code"].to_list() == WITH_DATA
    async with AsyncMarketDataClient(QlibStore.open(qlib_dir), max_workers=2) as md:
        csi300 = (await md.members("csi300"))["code"].unique()
        result = await md.load_many(csi300, concurrency=2)
        assert result.errors == {} and len(result.without_bars) == 38 and "SH600005" in result.without_bars
        bars = await md.bars(["SH600000", "SH600005"], start="2026-05-01")
        assert bars["code"].unique().to_list() == ["SH600000"]


# -- codes with a table but missing from stock.db ---------------------------------------------------------


def test_table_missing_from_stock_db_is_read_with_type_from_code_rules(
    hikyuu_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("stock.db", "sh_day.h5", "sz_day.h5"):
        shutil.copy(hikyuu_dir / name, tmp_path / name)
    (tmp_path / "stock.db").chmod(0o644)
    with sqlite3.connect(tmp_path / "stock.db") as conn:
        conn.execute("DELETE FROM Stock WHERE code IN ('600004', '000002')")
    conn.close()
    caplog.set_level(logging.WARNING)
    with HikyuuStore.open(hikyuu_dir) as original, HikyuuStore.open(tmp_path) as store:
        listed = store.stocks(valid=None)
        assert listed.schema == pl.Schema(STOCK_SCHEMA)
        assert sorted(listed.filter(pl.col("has_data"))["code"].to_list()) == WITH_DATA
        orphans = listed.filter(pl.col("code").is_in(["SH600004", "SZ000002"]))
        assert orphans["type"].to_list() == [int(StockType.A_SHARE)] * 2
        assert orphans["valid"].all() and orphans["has_data"].all() and orphans["lot"].to_list() == [100, 100]
        assert store.stocks(types=[StockType.A_SHARE])["code"].is_in(["SH600004", "SZ000002"]).sum() == 2
        for code in ("SH600004", "SZ000002"):
            sc = StockCode.parse(code)
            # volume in shares (the A-share lot scale from the code rules); no weights, so no adjustment
            assert store.read_bars(sc).equals(original.read_bars(sc))
            assert store.read_bars(sc, adjust=Adjust.FORWARD).equals(original.read_bars(sc))
        frame, errors = store.read_many([StockCode.parse(c) for c in WITH_DATA])
        assert errors == {} and frame.equals(
            pl.concat([original.read_bars(StockCode.parse(c)) for c in WITH_DATA])
        )
        assert store.read_all().equals(frame)
    warnings = [r.getMessage() for r in caplog.records if "not in stock.db" in r.getMessage()]
    assert len(warnings) == 1 and "2 code(s)" in warnings[0]  # one warning with the count
