"""Whole-store loads decode Hikyuu's chunks themselves: every layout HDF5 allows gives the values HDF5
gives, odd layouts go through HDF5, and a damaged chunk fails its own table only. Batch reads of many
codes (``read_many``) go the same way and give what ``read_bars`` gives code by code."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest

from hikyuu_qlib import Adjust, DateRange, KType, StockCode
from hikyuu_qlib.domain import DataFormatError, LoadErrors, NoBarsError, UnknownCodeError
from hikyuu_qlib.stores.hikyuu import HikyuuStore, bulk
from hikyuu_qlib.stores.hikyuu.chunks import plan_file

CODES = ["SH000001", "SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002", "SZ000004", "SZ000005"]


@pytest.fixture(autouse=True)
def _threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "MIN_CHUNKS_FOR_THREADS", 1)  # the small store is decoded on two threads too


def _copy_store(src: Path, dst: Path) -> Path:
    for name in ("stock.db", "sh_day.h5", "sz_day.h5"):
        shutil.copy(src / name, dst / name)
    return dst


def _expected(hikyuu_dir: Path, adjust: Adjust, codes: list[str] = CODES) -> pl.DataFrame:
    with HikyuuStore.open(hikyuu_dir) as good:
        return pl.concat([good.read_bars(StockCode.parse(c), adjust=adjust) for c in codes])


def test_hikyuu_files_are_decoded_from_their_chunks(hikyuu_dir: Path) -> None:
    with h5py.File(hikyuu_dir / "sh_day.h5", "r") as f:
        names = sorted(f["data"])
    plan = plan_file(str(hikyuu_dir / "sh_day.h5"), names)
    assert not plan.fallback and not plan.errors
    assert len(plan.layouts) == 1 and plan.layouts[0].shuffle_at == 0 and plan.layouts[0].deflate_at == 1
    assert len(plan.size) >= sum(plan.rows) // plan.layouts[0].chunk_rows


def _rewrite(f: h5py.File, name: str, **kwargs: object) -> None:
    data = f[f"data/{name}"][()]
    del f[f"data/{name}"]
    dtype = kwargs.pop("dtype", data.dtype)
    f.create_dataset(f"data/{name}", data=data.astype(dtype), **kwargs)  # type: ignore[call-overload]


def _with_skipped_deflate(f: h5py.File, name: str) -> None:
    """Rewrite the table as shuffle + deflate, with its first chunk stored shuffled but not deflated
    (filter mask bit 1), as HDF5 does when deflate would not shrink a chunk."""
    data = f[f"data/{name}"][()]
    del f[f"data/{name}"]
    chunk = 256
    ds = f.create_dataset(f"data/{name}", data=data, chunks=(chunk,), shuffle=True, compression="gzip")
    first = np.zeros(chunk, dtype=data.dtype)
    first[: min(chunk, data.size)] = data[:chunk]
    planes = first.view(np.uint8).reshape(chunk, data.dtype.itemsize).T.copy()  # the shuffle filter
    ds.id.write_direct_chunk((0,), planes.tobytes(), filter_mask=0b10)


@pytest.mark.parametrize("adjust", [Adjust.NONE, Adjust.FORWARD])
def test_every_layout_reads_as_hdf5_reads_it(hikyuu_dir: Path, tmp_path: Path, adjust: Adjust) -> None:
    store_dir = _copy_store(hikyuu_dir, tmp_path)
    with h5py.File(store_dir / "sh_day.h5", "r+") as f:
        _rewrite(f, "SH000001", chunks=(500,), compression="gzip")  # deflate, no shuffle
        _rewrite(f, "SH600000", chunks=(700,))  # chunked, no filter
        _rewrite(f, "SH600004")  # contiguous: HDF5 reads it
        _rewrite(f, "SH600005", chunks=(300,), shuffle=True, compression="gzip", fletcher32=True)  # HDF5
    with h5py.File(store_dir / "sz_day.h5", "r+") as f:
        _rewrite(f, "SZ000001", chunks=(400,), compression="lzf")  # HDF5
        big_endian = f["data/SZ000002"].dtype.newbyteorder(">")
        _rewrite(f, "SZ000002", chunks=(400,), compression="gzip", dtype=big_endian)  # HDF5
        _with_skipped_deflate(f, "SZ000004")
    sh = plan_file(str(store_dir / "sh_day.h5"), ["SH000001", "SH600000", "SH600004", "SH600005"])
    sz = plan_file(str(store_dir / "sz_day.h5"), ["SZ000001", "SZ000002", "SZ000004", "SZ000005"])
    assert (sh.fallback, sz.fallback) == ([2, 3], [0, 1])
    assert any(m == 0b10 for m in sz.mask)
    with HikyuuStore.open(store_dir) as store:
        frame = store.read_all(adjust=adjust, workers=2)
    assert frame.equals(_expected(hikyuu_dir, adjust))


def test_a_damaged_chunk_fails_its_table_only(hikyuu_dir: Path, tmp_path: Path) -> None:
    store_dir = _copy_store(hikyuu_dir, tmp_path)
    with h5py.File(store_dir / "sz_day.h5", "r") as f:
        info = f["data/SZ000002"].id.get_chunk_info(1)
    with open(store_dir / "sz_day.h5", "r+b") as raw:
        raw.seek(info.byte_offset + info.size // 2)
        raw.write(b"\xff" * 64)
    with HikyuuStore.open(store_dir) as store:
        with pytest.raises(
            LoadErrors, match=rf"SZ000002.*sz_day\.h5:/data/SZ000002: chunk at byte {info.byte_offset}"
        ):
            store.read_all(workers=2)
        rest = bulk.read_all(store.files, on_error="skip", workers=2)
    assert rest.equals(_expected(hikyuu_dir, Adjust.NONE, [c for c in CODES if c != "SZ000002"]))


@pytest.mark.parametrize("adjust", list(Adjust))
@pytest.mark.parametrize("dates", [None, DateRange.of("2008-03-01", "2011-06-30")])
@pytest.mark.parametrize("kernel", [False, True])
def test_read_many_equals_read_bars_code_by_code(
    hikyuu_dir: Path, adjust: Adjust, dates: DateRange | None, kernel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kernel:  # the compiled whole-market adjustment, on a small store
        monkeypatch.setattr(bulk, "AFFINE_KERNEL_MIN_ROWS", 0)
    asked = [StockCode.parse(c) for c in [*CODES, "SH600001", "SZ300999"]]
    with HikyuuStore.open(hikyuu_dir) as store:
        frame, errors = store.read_many(asked, adjust=adjust, dates=dates)
        expected = pl.concat([store.read_bars(StockCode.parse(c), adjust=adjust, dates=dates) for c in CODES])
    assert frame.equals(expected)
    assert set(errors) == {"SH600001", "SZ300999"}
    assert isinstance(errors["SH600001"], NoBarsError)  # in stock.db, no table: without bars
    assert isinstance(errors["SZ300999"], UnknownCodeError)  # the store does not know it


def test_read_many_reports_a_damaged_table_and_builds_weeks_code_by_code(
    hikyuu_dir: Path, tmp_path: Path
) -> None:
    store_dir = _copy_store(hikyuu_dir, tmp_path)
    with h5py.File(store_dir / "sh_day.h5", "r") as f:
        info = f["data/SH600004"].id.get_chunk_info(0)
    with open(store_dir / "sh_day.h5", "r+b") as raw:
        raw.seek(info.byte_offset + 8)
        raw.write(b"\x00" * 32)
    asked = [StockCode.parse(c) for c in CODES]
    with HikyuuStore.open(store_dir) as store:
        frame, errors = store.read_many(asked, adjust=Adjust.FORWARD)
        assert set(errors) == {"SH600004"} and isinstance(errors["SH600004"], DataFormatError)
        assert "sh_day.h5:/data/SH600004" in str(errors["SH600004"])
        weeks, week_errors = store.read_many(asked[:3], ktype=KType.WEEK, adjust=Adjust.BACKWARD)
        expected_weeks = pl.concat(
            [
                store.read_bars(c, ktype=KType.WEEK, adjust=Adjust.BACKWARD)
                for c in asked[:3]
                if str(c) != "SH600004"
            ]
        )
    assert frame.equals(_expected(hikyuu_dir, Adjust.FORWARD, [c for c in CODES if c != "SH600004"]))
    assert set(week_errors) == {"SH600004"} and weeks.equals(expected_weeks)
