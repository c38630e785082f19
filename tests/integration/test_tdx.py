"""TDX .day reading and import into a Hikyuu-layout store, checked against the real sh_day.h5."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import struct
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import Adjust, StockCode
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.tdx import import_tdx, read_tdx_day


@pytest.fixture(scope="module")
def vipdoc(hikyuu_dir: Path) -> Path:
    return hikyuu_dir / "vipdoc"


@pytest.fixture(scope="module")
def imported(vipdoc: Path, hikyuu_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tdx_store")
    report = import_tdx(vipdoc, out, base_db=hikyuu_dir / "stock.db")
    assert report.ok and set(report.imported) == {"SH000001", "SH600000"}
    return out


def _raw(path: Path) -> list[tuple[int, ...]]:
    blob = path.read_bytes()
    return [struct.unpack("<IIIIIfII", blob[i : i + 32]) for i in range(0, len(blob), 32)]


def test_read_tdx_day_units(vipdoc: Path) -> None:
    path = vipdoc / "sh" / "lday" / "sh600000.day"
    frame = read_tdx_day(path)
    raw = _raw(path)
    assert frame.height == len(raw) == path.stat().st_size // 32
    first = frame.row(0, named=True)
    assert first["datetime"] == dt.datetime(1999, 11, 10)
    assert (first["open"], first["high"], first["low"], first["close"]) == pytest.approx(
        (29.5, 29.8, 27.0, 27.75)
    )
    assert first["amount"] == pytest.approx(raw[0][5]) and first["volume"] == raw[0][6] == 174_085_000
    assert frame["datetime"].is_sorted()


def test_import_follows_hikyuu_importer(imported: Path, vipdoc: Path) -> None:
    with h5py.File(imported / "sh_day.h5", "r") as f:
        ours = f["data/SH600000"][()]
        index = f["data/SH000001"][()]
    raw = np.array(_raw(vipdoc / "sh" / "lday" / "sh600000.day"), dtype=np.float64)
    np.testing.assert_array_equal(ours["datetime"], raw[:, 0].astype(np.uint64) * 10000)
    np.testing.assert_array_equal(ours["closePrice"], raw[:, 4] * 10)
    np.testing.assert_array_equal(ours["transAmount"], np.round(raw[:, 5] * 0.001))
    np.testing.assert_array_equal(ours["transCount"], np.round(raw[:, 6] * 0.01))  # lots
    raw_ix = np.array(_raw(vipdoc / "sh" / "lday" / "sh000001.day"), dtype=np.float64)
    prices = raw_ix[:, 1:5]
    valid = (
        (prices > 0).all(axis=1)
        & (prices[:, 1] >= prices[:, 0])
        & (prices[:, 0] >= prices[:, 2])
        & (prices[:, 1] >= prices[:, 3])
        & (prices[:, 3] >= prices[:, 2])
    )
    assert (~valid).sum() == 16 and index.shape[0] == valid.sum()
    np.testing.assert_array_equal(index["transCount"], raw_ix[valid, 6])  # indices keep raw volume


def _overlap(imported: Path, hikyuu_dir: Path, code: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    with h5py.File(imported / "sh_day.h5", "r") as a, h5py.File(hikyuu_dir / "sh_day.h5", "r") as b:
        ours, real = a[f"data/{code}"][()], b[f"data/{code}"][()]
    _, ia, ib = np.intersect1d(ours["datetime"], real["datetime"], return_indices=True)
    last_real = real["datetime"][-1]
    return ours[ia], real[ib], int((ours["datetime"] <= last_real).sum()), real.shape[0]


def test_imported_store_matches_sh_day_h5(imported: Path, hikyuu_dir: Path) -> None:
    ours, real, ours_n, real_n = _overlap(imported, hikyuu_dir, "SH600000")
    assert ours.shape[0] >= real_n - 1 and ours_n == ours.shape[0]  # same trading days
    fields = ("openPrice", "highPrice", "lowPrice", "closePrice")
    exact = np.all([ours[f] == real[f] for f in fields], axis=0)
    assert exact.mean() > 0.985  # the two vendors' histories differ on a few dozen corrected days
    for f in ("transCount", "transAmount"):  # same units (lots, thousands of yuan), rounding apart
        close = np.abs(ours[f].astype(np.float64) - real[f]) <= np.maximum(1, 1e-3 * real[f])
        assert close.mean() > 0.99, f
    # the index: the importer's skipped records are exactly the days sh_day.h5 lacks
    ours, real, ours_n, real_n = _overlap(imported, hikyuu_dir, "SH000001")
    assert ours.shape[0] == ours_n == real_n
    diff = np.abs(ours["closePrice"].astype(np.int64) - real["closePrice"].astype(np.int64))
    assert np.mean(diff <= 10) > 0.95  # TDX keeps 2 decimals of the index, sh_day.h5 has 3
    assert np.mean(ours["transCount"] == real["transCount"]) > 0.4


def test_imported_store_reads(imported: Path) -> None:
    with HikyuuStore.open(imported) as store:
        bars = store.read_bars(StockCode.parse("SH600000"))
        assert bars["datetime"][-1] == dt.datetime(2025, 8, 5)
        assert bars["volume"][-1] == round(133_646_594 / 100) * 100


def test_corrupt_file_fails_alone(vipdoc: Path, tmp_path: Path) -> None:
    src = tmp_path / "vipdoc" / "sh" / "lday"
    src.mkdir(parents=True)
    shutil.copy(vipdoc / "sh" / "lday" / "sh600000.day", src)
    blob = (vipdoc / "sh" / "lday" / "sh000001.day").read_bytes()
    (src / "sh000001.day").write_bytes(blob[:-5])
    bad_date = bytearray(blob[:64])
    bad_date[32:36] = struct.pack("<I", 20231345)
    (tmp_path / "vipdoc" / "sz" / "lday").mkdir(parents=True)
    (tmp_path / "vipdoc" / "sz" / "lday" / "sz000001.day").write_bytes(bytes(bad_date))
    progress: list[tuple[int, int, str]] = []
    report = import_tdx(
        tmp_path / "vipdoc", tmp_path / "out", progress=lambda d, t, i: progress.append((d, t, i))
    )
    assert set(report.failed) == {"SH000001", "SZ000001"}
    assert report.failed["SH000001"].startswith("DataFormatError: ")  # the form every batch report keeps
    assert report.failed["SZ000001"].startswith("DataFormatError: ")
    assert report.ok == ["SH600000"] and report.to_dict()["ok"] == ["SH600000"]
    assert "sh000001.day" in str(report.failed["SH000001"]) and "multiple of 32" in str(
        report.failed["SH000001"]
    )
    assert "20231345" in str(report.failed["SZ000001"])
    assert report.imported == {"SH600000": 6119}
    assert [p[0] for p in progress] == [1, 2, 3] and progress[-1][1] == 3
    with HikyuuStore.open(tmp_path / "out") as store:  # stock rows derived from code rules
        row = store.stocks().row(0, named=True)
        assert (row["code"], row["type"], row["start_date"]) == ("SH600000", 1, dt.date(1999, 11, 10))


def test_adjusting_a_store_without_weights_warns_once(
    vipdoc: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "no_base_db"
    assert import_tdx(vipdoc, out).ok  # no --base-db: stock.db holds no weight record at all
    caplog.set_level(logging.WARNING)
    sh600000 = StockCode.parse("SH600000")
    with HikyuuStore.open(out) as store:
        raw = store.read_bars(sh600000)
        assert not [r for r in caplog.records if "weight" in r.getMessage()]  # unadjusted: nothing to say
        for adjust in (Adjust.FORWARD, Adjust.BACKWARD, Adjust.FORWARD):
            assert store.read_bars(sh600000, adjust=adjust).equals(raw)  # prices stay unadjusted
        frame, errors = store.read_many([sh600000], adjust=Adjust.BACKWARD)
        assert errors == {} and frame.equals(raw)
        assert store.read_all(adjust=Adjust.FORWARD).filter(pl.col("code") == "SH600000").equals(raw)
    warnings = [r.getMessage() for r in caplog.records if "weight" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once per store, not once per read
    assert "unadjusted" in warnings[0] and str(out.resolve()) in warnings[0]
    with HikyuuStore.open(out) as again:  # another store object warns again, once
        again.read_bars(sh600000, adjust=Adjust.BACKWARD)
    assert len([r for r in caplog.records if "weight" in r.getMessage()]) == 2


def test_adjusting_a_store_with_weights_does_not_warn(
    imported: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with HikyuuStore.open(imported) as store:
        store.read_bars(StockCode.parse("SH600000"), adjust=Adjust.FORWARD)
    assert not [r for r in caplog.records if "weight" in r.getMessage()]
