"""Hikyuu's time-line and tick tables as frames: the real ``sh_time.h5`` / ``sh_trans.h5`` of the shared
store, and generated files in the same layout (fields in another order, rows out of order, damage)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import DataFormatError, DateRange, NoBarsError
from hikyuu_qlib.ports import TickSource
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.hikyuu.ticks import DIRECTIONS, TIMELINE_SCHEMA, TRANS_SCHEMA


@pytest.fixture(scope="module")
def store(hikyuu_dir: Path) -> HikyuuStore:
    return HikyuuStore.open(hikyuu_dir)


def _raw(path: Path, table: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.asarray(f["data"][table][()])


def test_real_time_line(store: HikyuuStore, hikyuu_dir: Path) -> None:
    assert isinstance(store, TickSource)
    frame = store.timeline("SH600000")
    raw = _raw(hikyuu_dir / "sh_time.h5", "SH600000")
    assert frame.schema == pl.Schema(TIMELINE_SCHEMA)
    assert frame.height == raw.shape[0] == 43 * 240
    assert frame["datetime"][0] == dt.datetime(2018, 12, 3, 9, 30)
    assert frame["datetime"][-1] == dt.datetime(2019, 2, 1, 14, 59)
    assert frame["datetime"].is_sorted()
    assert frame.group_by(pl.col("datetime").dt.date()).len()["len"].unique().to_list() == [240]
    np.testing.assert_array_equal(frame["price"].to_numpy(), raw["price"] / 1000.0)
    # a stock's volume is stored in lots, served in shares like its day bars
    np.testing.assert_array_equal(frame["volume"].to_numpy(), raw["vol"] * 100.0)
    # an index's volume stays as stored, like its day bars
    index = store.timeline("SH000001")
    np.testing.assert_array_equal(
        index["volume"].to_numpy(), _raw(hikyuu_dir / "sh_time.h5", "SH000001")["vol"]
    )


def test_real_ticks(store: HikyuuStore, hikyuu_dir: Path) -> None:
    frame = store.trans("SH600000")
    raw = _raw(hikyuu_dir / "sh_trans.h5", "SH600000")
    assert frame.schema == pl.Schema(TRANS_SCHEMA)
    assert frame.height == raw.shape[0] == 6223
    assert frame["datetime"][0] == dt.datetime(2019, 2, 1, 9, 25, 2)
    assert frame["datetime"][-1] == dt.datetime(2019, 2, 11, 15, 0, 0)
    assert frame["datetime"].is_sorted()
    counts = dict(zip(*np.unique(raw["buyorsell"], return_counts=True), strict=True))
    got = dict(frame.group_by("direction").len().iter_rows())
    assert got == {"buy": counts[0], "sell": counts[1], "auction": counts[2]}
    assert (
        frame["datetime"][0].second == 2
        and frame.filter(pl.col("direction") == "auction").height == counts[2]
    )
    # the day's ticks add up to the day's time-line volume (both in shares) on 2019-02-01
    day = DateRange.of("2019-02-01", "2019-02-01")
    ticks = store.trans("SH600000", dates=day)
    minutes = store.timeline("SH600000", dates=day)
    assert ticks.height == 3083 and minutes.height == 240
    assert ticks["volume"].sum() == minutes["volume"].sum() == 19_119_300.0


def test_missing_tables_and_files_are_without_data(store: HikyuuStore) -> None:
    with pytest.raises(NoBarsError, match="no table /data/SH600005"):
        store.trans("SH600005")
    with pytest.raises(NoBarsError, match=r"sz_time\.h5"):
        store.timeline("SZ000001")


def _generated_store(hikyuu_dir: Path, root: Path) -> Path:
    """A store whose hikyuu.ini names time and tick files of its own for SZ (written here with h5py)."""
    data = root / "data"
    data.mkdir()
    shutil.copy(hikyuu_dir / "stock.db", data / "stock.db")
    (root / "hikyuu.ini").write_text(
        "[hikyuu]\ndatadir = data\n[baseinfo]\ntype = sqlite3\ndb = stock.db\n"
        "[kdata]\ntype = hdf5\nsz_day = " + str(hikyuu_dir / "sz_day.h5") + "\n"
        "sz_time = ticks/sz_minutes.h5\nsz_trans = ticks/sz_ticks.h5\n"
    )
    (data / "ticks").mkdir()
    minute = np.dtype([("vol", "<u8"), ("price", "<u8"), ("datetime", "<u8")])  # another field order
    rows = np.array(
        [(300, 10_010, 202401020931), (200, 10_000, 202401020930), (0, 10_020, 202401021500)], minute
    )
    tick = np.dtype([("buyorsell", "u1"), ("datetime", "<u8"), ("price", "<u8"), ("vol", "<u8")])
    ticks = np.array(
        [(2, 20240102092500, 9_990, 50), (0, 20240102093003, 10_000, 7), (1, 20240102093006, 10_010, 3),
         (9, 20240102093009, 10_020, 1)],
        tick,
    )  # fmt: skip
    with h5py.File(data / "ticks" / "sz_minutes.h5", "w") as f:
        f.create_dataset("data/SZ000001", data=rows)
        f.create_dataset("data/SZ000002", data=np.array([(1, 1, 202413450930)], minute))  # month 13
    with h5py.File(data / "ticks" / "sz_ticks.h5", "w") as f:
        f.create_dataset("data/SZ000001", data=ticks)
        f.create_dataset("data/SZ000002", data=np.array([(0, 20240102093075, 1, 1)], tick))  # second 75
    return root / "hikyuu.ini"


def test_generated_files_named_by_hikyuu_ini(hikyuu_dir: Path, tmp_path: Path) -> None:
    store = HikyuuStore.open(_generated_store(hikyuu_dir, tmp_path))
    try:
        minutes = store.timeline("SZ000001")
        assert minutes["datetime"].to_list() == [
            dt.datetime(2024, 1, 2, 9, 30), dt.datetime(2024, 1, 2, 9, 31), dt.datetime(2024, 1, 2, 15, 0)
        ]  # fmt: skip
        assert minutes["price"].to_list() == [10.0, 10.01, 10.02]
        assert minutes["volume"].to_list() == [20_000.0, 30_000.0, 0.0]
        ticks = store.trans("SZ000001", dates=DateRange.of("2024-01-02 09:30", "2024-01-02"))
        assert ticks["datetime"].dt.second().to_list() == [3, 6, 9]
        assert ticks["direction"].cast(pl.String).to_list() == ["buy", "sell", "unknown"]
        assert list(ticks["direction"].dtype.categories) == list(DIRECTIONS)  # type: ignore[attr-defined]
        with pytest.raises(
            DataFormatError, match=r"sz_minutes\.h5:/data/SZ000002: invalid datetime 202413450930"
        ):
            store.timeline("SZ000002")
        with pytest.raises(DataFormatError, match="invalid datetime 20240102093075"):
            store.trans("SZ000002")
    finally:
        store.close()
