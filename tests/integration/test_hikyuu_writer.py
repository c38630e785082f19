"""HikyuuWriter: round trips through HikyuuStore, Hikyuu's index tables, minute files, append."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import Adjust, DateRange, KType, StockCode
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.hikyuu.writer import HikyuuWriter

CODES = ["SH000001", "SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002", "SZ000004", "SZ000005"]


@pytest.fixture(scope="module")
def source(hikyuu_dir: Path) -> HikyuuStore:
    s = HikyuuStore.open(hikyuu_dir)
    yield s  # type: ignore[misc]
    s.close()


@pytest.fixture(scope="module")
def copy_dir(source: HikyuuStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hikyuu_copy")
    codes = [StockCode.parse(c) for c in CODES]
    with HikyuuWriter(out) as writer:
        writer.write_stocks(source.stocks(valid=None).filter(pl.col("code").is_in(CODES)))
        writer.write_weights(pl.concat([source.weights(c).with_columns(code=pl.lit(str(c))) for c in codes]))
        writer.write_bars(source.read_all())
    return out


def test_round_trip_same_values(source: HikyuuStore, copy_dir: Path) -> None:
    with HikyuuStore.open(copy_dir) as copy:
        assert copy.ktypes() == source.ktypes()
        assert copy.stocks(valid=None).equals(source.stocks(valid=None).filter(pl.col("code").is_in(CODES)))
        assert copy.calendar().equals(source.calendar())
        for code in map(StockCode.parse, CODES):
            assert copy.weights(code).equals(source.weights(code))
            for ktype in (KType.DAY, KType.WEEK, KType.QUARTER, KType.HALFYEAR):
                for adjust in (Adjust.NONE, Adjust.BACKWARD):
                    assert copy.read_bars(code, ktype=ktype, adjust=adjust).equals(
                        source.read_bars(code, ktype=ktype, adjust=adjust)
                    ), (code, ktype, adjust)


def test_layout_is_hikyuus(hikyuu_dir: Path, copy_dir: Path) -> None:
    with h5py.File(hikyuu_dir / "sh_day.h5", "r") as real, h5py.File(copy_dir / "sh_day.h5", "r") as ours:
        assert set(ours.keys()) == set(real.keys())
        for code in ("SH000001", "SH600000"):
            table = ours[f"data/{code}"]
            assert table.dtype == real[f"data/{code}"].dtype
            assert table.compression == "gzip" and table.compression_opts == 9 and table.shuffle
            np.testing.assert_array_equal(table[()], real[f"data/{code}"][()])
            for group in ("week", "month", "quarter", "halfyear", "year"):
                np.testing.assert_array_equal(ours[f"{group}/{code}"][()], real[f"{group}/{code}"][()])
            assert ours[f"data/{code}"].attrs["CLASS"] == b"TABLE"
    ini = (copy_dir / "hikyuu.ini").read_text()
    assert "[kdata]" in ini and f"sh_day = {copy_dir / 'sh_day.h5'}" in ini
    with HikyuuStore.open(copy_dir / "hikyuu.ini") as via_ini:
        assert via_ini.read_bars(StockCode.parse("SZ000001")).height == 4937


def _minute_bars(code: str, days: list[dt.date], step: int) -> pl.DataFrame:
    stamps = []
    for d in days:
        for start, end in ((dt.time(9, 30), dt.time(11, 30)), (dt.time(13, 0), dt.time(15, 0))):
            t = dt.datetime.combine(d, start) + dt.timedelta(minutes=step)
            while t.time() <= end:
                stamps.append(t)
                t += dt.timedelta(minutes=step)
    n = len(stamps)
    i = np.arange(n, dtype=np.float64)
    milli = np.round((10 + np.sin(i / 7)) * 1000)  # prices the store can hold exactly (x1000 integers)
    close = milli / 1000
    return pl.DataFrame(
        {
            "code": [code] * n,
            "datetime": pl.Series(stamps).cast(DATETIME),
            "open": (milli - 10) / 1000,
            "high": (milli + 50 + (i % 3) * 10) / 1000,
            "low": (milli - 40) / 1000,
            "close": close,
            "volume": (1000 + i * 100).round(),
            "amount": ((1000 + i * 100) * close).round(-3),
        }
    )


def test_minute_files(tmp_path: Path) -> None:
    days = [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
    min1 = _minute_bars("SH600000", days, 1)
    min5 = _minute_bars("SH600000", days, 5)
    with HikyuuWriter(tmp_path) as writer:
        writer.write_stocks(pl.DataFrame({"code": ["SH600000"], "type": [1]}))
        assert writer.write_bars(min1, KType.MIN) == 480
        assert writer.write_bars(min5, KType.MIN5) == 96
    with HikyuuStore.open(tmp_path) as store:
        assert store.ktypes() == {KType.MIN, KType.MIN5, KType.MIN15, KType.MIN30, KType.MIN60}
        code = StockCode.parse("SH600000")
        assert store.read_bars(code, ktype=KType.MIN).equals(min1)  # intraday volume stays in shares
        assert store.read_bars(code, ktype=KType.MIN5).equals(min5)
        hour = store.read_bars(code, ktype=KType.MIN60)
        assert [t.time() for t in hour["datetime"][:4]] == [
            dt.time(10, 30),
            dt.time(11, 30),
            dt.time(14),
            dt.time(15),
        ]
        assert hour.height == 8
        first = min5.filter(pl.col("datetime") <= dt.datetime(2024, 3, 4, 10, 30))
        row = hour.row(0, named=True)
        assert row["open"] == first["open"][0] and row["close"] == first["close"][-1]
        assert row["high"] == first["high"].max() and row["volume"] == first["volume"].sum()
        m15 = store.read_bars(code, ktype=KType.MIN15, dates=DateRange.of("2024-03-05", "2024-03-05"))
        assert m15.height == 16 and m15["datetime"][0] == dt.datetime(2024, 3, 5, 9, 45)
        assert store.calendar(ktype=KType.MIN5).len() == 96
        with pytest.raises(Exception, match="day"):
            store.read_bars(code)


def test_append_adds_later_rows_and_reindexes(source: HikyuuStore, tmp_path: Path) -> None:
    code = StockCode.parse("SH600000")
    bars = source.read_bars(code)
    cut = dt.datetime(2011, 6, 15)
    with HikyuuWriter(tmp_path) as writer:
        writer.write_stocks(source.stocks().filter(pl.col("code") == "SH600000"))
        writer.write_bars(bars.filter(pl.col("datetime") < cut))
    with HikyuuWriter(tmp_path) as writer:
        added = writer.write_bars(bars.filter(pl.col("datetime") >= dt.datetime(2011, 1, 1)), append=True)
    assert added == bars.filter(pl.col("datetime") >= cut).height
    with HikyuuStore.open(tmp_path) as store:
        assert store.read_bars(code).equals(bars)
        assert store.read_bars(code, ktype=KType.MONTH).equals(source.read_bars(code, ktype=KType.MONTH))
