"""Hikyuu's blocks as universes, in both of Hikyuu's layouts, generated in temporary copies of the real
Hikyuu store (its own stock.db has an empty Block table and no block folder): qianlong ini files (a data
directory's ``block/`` folder, or named by ``hikyuu.ini``) and stock.db's ``Block`` table."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from hikyuu_qlib.domain import DataFormatError, InvalidInputError, NotFoundError
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.hikyuu.blocks import write_block_ini, write_block_table

ZSBK = """; Hikyuu's index blocks
[沪深300]
0,600000
0,600004
1,000001 ; Ping An Bank
1,000002

[上证50]
0,600000
"""
HYBK = "[银行]\n0,600000\n1,000001\n[房地产]\n1,000002\n[沪深300]\n0,600005\n"


def store_copy(hikyuu_dir: Path, dest: Path) -> Path:
    """A writable stock.db and the real HDF5 files (linked) in ``dest``."""
    dest.mkdir(parents=True)
    shutil.copy(hikyuu_dir / "stock.db", dest / "stock.db")
    (dest / "stock.db").chmod(0o644)
    for name in ("sh_day.h5", "sz_day.h5"):
        (dest / name).symlink_to(hikyuu_dir / name)
    return dest


def test_the_shared_store_has_no_blocks(hikyuu_dir: Path) -> None:
    store = HikyuuStore.open(hikyuu_dir)
    assert store.blocks().height == 0
    with pytest.raises(NotFoundError, match="no blocks"):
        store.members("沪深300")


def test_block_folder_of_a_data_directory(hikyuu_dir: Path, tmp_path: Path) -> None:
    root = store_copy(hikyuu_dir, tmp_path / "store")
    (root / "block").mkdir()
    (root / "block" / "zsbk.ini").write_text(ZSBK, encoding="utf-8")
    (root / "block" / "hybk.ini").write_bytes(HYBK.encode("gbk"))  # older files are GBK
    store = HikyuuStore.open(root)
    assert sorted(store.members("指数板块/沪深300")["code"]) == [
        "SH600000",
        "SH600004",
        "SZ000001",
        "SZ000002",
    ]
    # a bare name in two categories is the index block; an English alias names it too
    assert store.members("沪深300")["code"].to_list() == store.members("csi300")["code"].to_list()
    assert store.members("行业板块/沪深300")["code"].to_list() == ["SH600005"]
    assert store.members("银行")["code"].to_list() == ["SH600000", "SZ000001"]
    # members span their listing (stock.db's start date) to the open end
    span = store.members("上证50").row(0, named=True)
    assert span["code"] == "SH600000" and span["start"] == dt.datetime(1999, 11, 10)
    assert store.members("all").height > 1000  # the markets' universes stay as they were
    with pytest.raises(NotFoundError, match="指数板块/上证50"):
        store.members("csi500")
    universe = Universe.from_store(store, "csi300")
    assert universe.members_on("2011-06-01") == ["SH600000", "SH600004", "SZ000001", "SZ000002"]


def test_ambiguous_and_damaged_blocks(hikyuu_dir: Path, tmp_path: Path) -> None:
    root = store_copy(hikyuu_dir, tmp_path / "store")
    (root / "block").mkdir()
    (root / "block" / "gnbk.ini").write_text("[银行]\n0,600000\n", encoding="utf-8")
    (root / "block" / "hybk.ini").write_text("[银行]\n1,000001\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="CATEGORY/NAME"):
        HikyuuStore.open(root).members("银行")
    (root / "block" / "dybk.ini").write_text("[上海]\n0,600000\n7,600004\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"dybk\.ini:3"):
        HikyuuStore.open(root).members("上海")


def test_hikyuu_ini_names_the_qianlong_files(hikyuu_dir: Path, tmp_path: Path) -> None:
    root = store_copy(hikyuu_dir, tmp_path / "store")
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "index.ini").write_text(ZSBK, encoding="utf-8")
    ini = tmp_path / "hikyuu.ini"
    ini.write_text(
        f"[hikyuu]\ndatadir = {root}\n\n[block]\ntype = qianlong\ndir = {tmp_path / 'blocks'}\n"
        f"指数板块 = index.ini\n\n[baseinfo]\ntype = sqlite3\ndb = {root / 'stock.db'}\n\n"
        f"[kdata]\ntype = hdf5\nsh_day = {root / 'sh_day.h5'}\nsz_day = {root / 'sz_day.h5'}\n",
        encoding="utf-8",
    )
    store = HikyuuStore.open(ini)
    before = store.data_version()
    assert store.members("csi300").height == 4
    assert write_block_ini(tmp_path / "blocks" / "index.ini", "沪深300", ["SH600005", "SZ000004"]) == 2
    text = (tmp_path / "blocks" / "index.ini").read_text(encoding="utf-8")
    assert "[沪深300]\n0,600005\n1,000004\n" in text and "[上证50]\n0,600000" in text  # the others stay
    again = HikyuuStore.open(ini)
    assert again.members("csi300")["code"].to_list() == ["SH600005", "SZ000004"]
    assert again.data_version() != before  # the block files are part of the store's version


def test_block_table_of_stock_db(hikyuu_dir: Path, tmp_path: Path) -> None:
    root = store_copy(hikyuu_dir, tmp_path / "store")
    with sqlite3.connect(root / "stock.db") as conn:  # rows as Hikyuu's importers write them
        conn.executemany(
            "INSERT INTO Block (category, name, market_code) VALUES (?, ?, ?)",
            [
                ("指数板块", "中证500", "SZ000004"),
                ("指数板块", "中证500", "SZ000005"),
                ("行业板块", "银行", "SH600000"),
            ],
        )
    store = HikyuuStore.open(root)
    assert store.members("csi500")["code"].to_list() == ["SZ000004", "SZ000005"]
    assert store.blocks().filter(pl.col("name") == "银行")["category"].to_list() == ["行业板块"]
    assert write_block_table(root / "stock.db", "指数板块", "中证500", ["sz000001"]) == 1
    assert HikyuuStore.open(root).members("中证500")["code"].to_list() == ["SZ000001"]


def test_universe_from_a_qlib_instruments_file(qlib_dir: Path) -> None:
    path = qlib_dir / "instruments" / "csi300.txt"
    universe = Universe.from_file(path)
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    by_hand = sorted({c for c, lo, hi in rows if lo <= "2020-06-01" <= hi})
    assert universe.name == "csi300" and universe.members_on("2020-06-01") == by_hand
    assert len(by_hand) > 250
    with pytest.raises(NotFoundError, match="instruments file"):
        Universe.from_file(qlib_dir / "instruments" / "nope.txt")


def add_block_index(db: Path, rows: list[tuple[str, str, str]]) -> None:
    """The BlockIndex table in the layout of Hikyuu's stock.db (schema version 17: the columns of Block,
    ``market_code`` holding the index's code), with rows as Hikyuu's block importers write them."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            'CREATE TABLE IF NOT EXISTS `BlockIndex` ("id" INTEGER, `category` VARCHAR(100) NOT NULL, '
            '`name` VARCHAR(100) NOT NULL, `market_code` VARCHAR(30) NOT NULL, PRIMARY KEY("id" AUTOINCREMENT))'
        )
        conn.executemany("INSERT INTO BlockIndex (category, name, market_code) VALUES (?, ?, ?)", rows)


def test_block_index_table_names_each_block_s_index(hikyuu_dir: Path, tmp_path: Path) -> None:
    root = store_copy(hikyuu_dir, tmp_path / "store")
    assert HikyuuStore.open(root).block_index().height == 0  # no BlockIndex table: no index
    members = {
        ("指数板块", "沪深300"): ["SH600000", "SH600004", "SZ000001"],
        ("指数板块", "中证500"): ["SZ000004", "SZ000005"],
        ("行业板块", "银行"): ["SH600000", "SZ000001"],
        ("行业板块", "大盘"): ["SH600000"],
    }
    for (category, name), codes in members.items():
        write_block_table(root / "stock.db", category, name, codes)
    add_block_index(
        root / "stock.db",
        [
            ("指数板块", "沪深300", "SH000300"),
            ("指数板块", "中证500", "SH000905"),
            ("指数板块", "沪深300", "SZ399300"),  # a second row for a block: Hikyuu keeps the first
            ("指数板块", "上证50", "SH000016"),  # an index without a block: no block
            ("行业板块", "银行", "SZ399986"),  # not in stock.db's stock list: Hikyuu ignores it
            ("行业板块", "大盘", "SH000300"),  # the same index as an index block
        ],
    )
    store = HikyuuStore.open(root)
    assert store.block_index().rows() == [
        ("指数板块", "中证500", "SH000905"),
        ("指数板块", "沪深300", "SH000300"),
        ("行业板块", "大盘", "SH000300"),
    ]
    # a block named by its index's code, in any spelling; the index block first when two share it
    assert store.members("SH000300")["code"].to_list() == ["SH600000", "SH600004", "SZ000001"]
    assert store.members("000905.SH")["code"].to_list() == ["SZ000004", "SZ000005"]
    assert Universe.from_store(store, "sh000300").members_on("2011-06-01") == members[("指数板块", "沪深300")]
    for unknown in ("SH000016", "SZ399986", "SZ399300"):
        with pytest.raises(NotFoundError, match=unknown):
            store.members(unknown)
    # rewriting a block replaces its index row, as Hikyuu's block save does (none given: none kept)
    write_block_table(root / "stock.db", "指数板块", "中证500", ["SZ000004"])
    assert ("指数板块", "中证500", "SH000905") not in HikyuuStore.open(root).block_index().rows()
    # two blocks outside the index category with one index: name one
    write_block_table(root / "stock.db", "行业板块", "大盘", ["SH600000"], "SH000905")
    write_block_table(root / "stock.db", "行业板块", "券商", ["SZ000002"], "sh000905")
    assert HikyuuStore.open(root).block_index().filter(pl.col("index_code") == "SH000905").height == 2
    with pytest.raises(InvalidInputError, match="CATEGORY/NAME"):
        HikyuuStore.open(root).members("SH000905")
    # a first row whose code is no stock code leaves the block without an index (Hikyuu ignores it)
    add_block_index(
        root / "stock.db", [("指数板块", "中证500", "not a code"), ("指数板块", "中证500", "SH000905")]
    )
    assert HikyuuStore.open(root).block_index().filter(pl.col("name") == "中证500").height == 0
