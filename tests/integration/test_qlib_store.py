"""QlibStore on the real Qlib store in ../shared/data/qlib_cn, compared with pyqlib itself."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.app import open_store
from hikyuu_qlib.domain import (
    Adjust,
    DataFormatError,
    DateRange,
    KType,
    LoadErrors,
    Market,
    NoBarsError,
    NotFoundError,
    StockCode,
    StockType,
    StoreNotFoundError,
    UnknownCodeError,
)
from hikyuu_qlib.domain.schema import BAR_SCHEMA, MEMBERSHIP_SCHEMA, STOCK_SCHEMA, WEIGHT_SCHEMA
from hikyuu_qlib.ports import MarketData
from hikyuu_qlib.stores.qlib import QlibStore

FIELDS = ["$open", "$high", "$low", "$close", "$volume", "$factor", "$change"]
ABSENT = "SH600005"  # a historical CSI300 member with no features folder in the shared store
GAPPY = "SZ302132"  # its bins hold a NaN row on 2012-09-10


@pytest.fixture(scope="module")
def store(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


def _qlib_frame(frame) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    """pyqlib's (instrument, datetime) MultiIndex frame as polars, columns without '$'."""
    out = pl.from_pandas(frame.reset_index())
    out = out.rename({c: c.lstrip("$") for c in out.columns} | {"instrument": "code"})
    return out.with_columns(pl.col("datetime").cast(pl.Datetime("ms")))


def _assert_identical(ours: pl.DataFrame, ref: pl.DataFrame) -> None:
    assert ours.columns == ref.columns
    assert ours.height == ref.height
    assert ours["code"].to_list() == ref["code"].to_list()
    assert (ours["datetime"] == ref["datetime"]).all()
    for name in ours.columns[2:]:
        assert ours[name].dtype == pl.Float32 and ref[name].dtype == pl.Float32
        assert np.array_equal(ours[name].to_numpy(), ref[name].to_numpy(), equal_nan=True), name


def _assert_served(served: pl.DataFrame, ref: pl.DataFrame) -> None:
    """``features`` as served: pyqlib's values, with this store's percent ``$change`` as a fraction."""
    as_fraction = (ref["change"].cast(pl.Float64) / 100.0).cast(pl.Float32)
    _assert_identical(served, ref.with_columns(as_fraction))


# -- opening and the MarketData port -------------------------------------------------------------------


def test_open_missing_directory_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        QlibStore.open(tmp_path / "nope")
    (tmp_path / "calendars").mkdir()
    with pytest.raises(StoreNotFoundError, match=r"day\.txt"):
        QlibStore.open(tmp_path)


def test_implements_market_data(store: QlibStore, qlib_dir: Path) -> None:
    assert isinstance(store, MarketData)
    with open_store(f"qlib:{qlib_dir}") as opened:
        assert isinstance(opened, QlibStore) and opened.source == store.source
    assert store.source == f"qlib:{qlib_dir.resolve()}"  # canonical: absolute, symlinks resolved
    # day, and the periods built from it (week … year, by Hikyuu's rules)
    assert store.ktypes() == frozenset(
        {KType.DAY, KType.WEEK, KType.MONTH, KType.QUARTER, KType.HALFYEAR, KType.YEAR}
    )
    assert set(store.markets()) == {Market.SH, Market.SZ}
    assert store.weights(StockCode.parse("SH600000")).schema == pl.Schema(WEIGHT_SCHEMA)


def test_stocks_from_all_txt(store: QlibStore) -> None:
    every = store.stocks(valid=None)
    assert every.schema == pl.Schema(STOCK_SCHEMA)
    assert every.height == 756 and every["code"].is_sorted()
    row = every.filter(pl.col("code") == "SH000300").row(0, named=True)
    assert row["type"] == StockType.INDEX and row["valid"] and row["end_date"] is None
    assert every.filter(pl.col("code") == "SZ399006")["type"].item() == StockType.INDEX
    assert set(every.filter(pl.col("code").str.starts_with("SH688"))["type"]) == {StockType.STAR}
    assert set(every.filter(pl.col("code").str.starts_with("SZ300"))["type"]) == {StockType.CHINEXT}
    listed = store.stocks()
    delisted = store.stocks(valid=False)
    # this store's all.txt runs every instrument to the last day, so all are "listed"
    assert listed.height + delisted.height == every.height
    assert listed["end_date"].null_count() == listed.height
    sz = store.stocks(market=Market.SZ, types=[StockType.CHINEXT], valid=None)
    assert sz.height > 0 and (sz["market"] == "SZ").all() and (sz["type"] == StockType.CHINEXT).all()
    assert (every["lot"] == 100).all() and every["name"].null_count() == every.height


def test_calendar(store: QlibStore) -> None:
    cal = store.calendar()
    assert cal.dtype == pl.Datetime("ms") and len(cal) == 3966
    assert cal[0] == dt.datetime(2010, 1, 4) and cal[-1] == dt.datetime(2026, 5, 8)
    year = store.calendar(dates=DateRange.of("2015-01-01", "2015-12-31"))
    assert year[0] == dt.datetime(2015, 1, 5) and year[-1] == dt.datetime(2015, 12, 31)
    assert len(store.calendar(dates=DateRange.of("2030-01-01", "2031-01-01"))) == 0


def test_members_point_in_time(store: QlibStore) -> None:
    spans = store.members("csi300")
    assert spans.schema == pl.Schema(MEMBERSHIP_SCHEMA)
    sh600004 = spans.filter(pl.col("code") == "SH600004")
    assert sh600004.height == 2  # left in 2011, came back in 2018
    in_2015 = store.members("csi300", DateRange.of("2015-06-01", "2015-06-30"))
    assert "SH600004" not in in_2015["code"].to_list() and "SH600000" in in_2015["code"].to_list()
    with pytest.raises(NotFoundError, match="csi300"):
        store.members("csi999")


# -- features: parity with pyqlib ----------------------------------------------------------------------


def test_features_csi300_identical_to_pyqlib(store: QlibStore, pyqlib) -> None:  # type: ignore[no-untyped-def]
    from qlib.data import D

    ref = _qlib_frame(D.features(D.instruments("csi300"), FIELDS, "2018-06-01", "2019-12-31"))
    ours = store.features("csi300", FIELDS, DateRange.of("2018-06-01", "2019-12-31"), as_stored=True)
    assert ours.height > 100_000
    # point in time: SH600004 re-entered on 2018-12-17, so its rows start there
    assert ours.filter(pl.col("code") == "SH600004")["datetime"].min() == dt.datetime(2018, 12, 17)
    _assert_identical(ours, ref)
    _assert_served(store.features("csi300", FIELDS, DateRange.of("2018-06-01", "2019-12-31")), ref)


def test_features_explicit_list_identical_to_pyqlib(store: QlibStore, pyqlib) -> None:  # type: ignore[no-untyped-def]
    from qlib.data import D

    codes = ["SH600000", ABSENT, "SH000300", "SZ000001", "SH600004", GAPPY]
    ref = _qlib_frame(D.features(codes, FIELDS, "2011-06-01", "2012-12-31"))
    ours = store.features(codes, FIELDS, DateRange.of("2011-06-01", "2012-12-31"), as_stored=True)
    # the absent instrument has no rows in either; no span masking for an explicit list
    assert ABSENT not in ours["code"].to_list()
    assert ours.filter(pl.col("code") == GAPPY)["close"].is_nan().sum() == 1  # NaN rows kept, as in Qlib
    assert ours.filter(pl.col("code") == "SH600004").height > 300
    _assert_identical(ours, ref)
    _assert_served(store.features(codes, FIELDS, DateRange.of("2011-06-01", "2012-12-31")), ref)


def test_features_field_spelling_and_codes(store: QlibStore) -> None:
    dates = DateRange.of("2020-01-01", "2020-01-31")
    a = store.features([StockCode.parse("600000.SH")], ["$close", "volume"], dates)
    b = store.features("sh600000", ["close", "$volume"], dates)
    assert a.columns == ["code", "datetime", "close", "volume"] and a.equals(b)
    assert a["code"].unique().to_list() == ["SH600000"] and a.height == 16
    empty = store.features("csi300", ["close"], DateRange.of("2030-01-01", "2030-12-31"))
    assert empty.height == 0 and empty.columns == ["code", "datetime", "close"]
    with pytest.raises(NotFoundError, match="csi300"):
        store.features("nosuchuniverse", ["close"])


# -- read_bars -----------------------------------------------------------------------------------------


def test_read_bars_original_prices(store: QlibStore) -> None:
    code = StockCode.parse("SH600000")
    raw = store.features([code], ["close", "open", "volume", "factor"])
    traded = raw.filter(~pl.col("close").is_nan())
    bars = store.read_bars(code)
    assert list(bars.columns) == [*BAR_SCHEMA, "factor"]
    assert bars.height == traded.height < raw.height or bars.height == traded.height
    assert bars["datetime"].is_sorted() and bars["amount"].null_count() == bars.height
    expect_close = traded["close"].cast(pl.Float64) / traded["factor"].cast(pl.Float64)
    np.testing.assert_allclose(bars["close"].to_numpy(), expect_close.to_numpy(), rtol=1e-12)
    # the data set keeps the traded shares in $volume (see test_qlib_volume): served as they are
    np.testing.assert_array_equal(bars["volume"].to_numpy(), traded["volume"].cast(pl.Float64).to_numpy())
    # SH600000 closed at 21.19 yuan on 2010-01-04 (the same day in the Hikyuu test data: 21190 milli-yuan)
    assert bars["close"][0] == pytest.approx(21.19, abs=0.006)


def test_read_bars_adjustments(store: QlibStore) -> None:
    code = StockCode.parse("SH600000")
    none = store.read_bars(code)
    fwd = store.read_bars(code, adjust=Adjust.FORWARD)
    bwd = store.read_bars(code, adjust=Adjust.BACKWARD)
    assert fwd["close"][-1] == pytest.approx(none["close"][-1], rel=1e-9)
    assert bwd["close"][0] == pytest.approx(none["close"][0], rel=1e-9)
    assert fwd["close"][0] < none["close"][0]  # dividends and bonus shares since 2010
    turnover = (none["close"] * none["volume"]).to_numpy()
    for other in (fwd, bwd):
        np.testing.assert_allclose((other["close"] * other["volume"]).to_numpy(), turnover, rtol=1e-9)
    window = DateRange.of("2015-01-01", "2015-12-31")
    part = store.read_bars(code, adjust=Adjust.FORWARD, dates=window)
    assert part.equals(fwd.filter(pl.col("datetime").is_between(window.start, window.end)))


def test_read_bars_drops_nan_close_days(store: QlibStore) -> None:
    raw = store.features([GAPPY], ["close"])
    assert raw["close"].is_nan().sum() == 1
    bars = store.read_bars(StockCode.parse(GAPPY))
    assert bars["close"].is_nan().sum() == 0 and bars["close"].null_count() == 0
    assert bars.height == raw.height - 1
    assert dt.datetime(2012, 9, 10) not in bars["datetime"].to_list()


def test_read_bars_unknown_code_raises(store: QlibStore) -> None:
    # listed in csi300.txt (a delisted member) without a features folder: without bars, not unknown
    with pytest.raises(NoBarsError, match=ABSENT):
        store.read_bars(StockCode.parse(ABSENT))
    with pytest.raises(UnknownCodeError, match="SH609999"):  # named by no instruments file, no folder
        store.read_bars(StockCode.parse("SH609999"))
    # while features() follows Qlib and returns no rows for it
    assert store.features([ABSENT], ["close"]).height == 0


def test_concurrent_reads(store: QlibStore) -> None:
    codes = store.instruments("all")[:40]
    expected = [store.read_bars(StockCode.parse(c), adjust=Adjust.FORWARD) for c in codes]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda c: store.read_bars(StockCode.parse(c), adjust=Adjust.FORWARD), codes))
    assert all(a.equals(b) for a, b in zip(expected, got, strict=True))


# -- corrupt copies --------------------------------------------------------------------------------------


@pytest.fixture()
def small(qlib_dir: Path, tmp_path: Path) -> Path:
    """A copy of the calendar, two instruments and their bins."""
    root = tmp_path / "qlib"
    (root / "calendars").mkdir(parents=True)
    (root / "instruments").mkdir()
    shutil.copy(qlib_dir / "calendars" / "day.txt", root / "calendars" / "day.txt")
    for name in ("all", "csi300"):
        lines = (qlib_dir / "instruments" / f"{name}.txt").read_text().splitlines()
        keep = [line for line in lines if line.split("\t")[0] in {"SH600000", "SH600036"}]
        (root / "instruments" / f"{name}.txt").write_text("\n".join(keep) + "\n")
    for folder in ("sh600000", "sh600036"):
        shutil.copytree(qlib_dir / "features" / folder, root / "features" / folder)
    return root


def _bin(root: Path, code: str, field: str) -> Path:
    return root / "features" / code / f"{field}.day.bin"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:2], "not a positive multiple of 4"),
        (lambda b: b[:-3], "not a positive multiple of 4"),
        (lambda b: np.array([-3], "<f4").tobytes() + b[4:], "not a non-negative integer"),
        (lambda b: np.array([2.5], "<f4").tobytes() + b[4:], "not a non-negative integer"),
        (lambda b: np.array([np.nan], "<f4").tobytes() + b[4:], "not a non-negative integer"),
        (lambda b: np.array([99999], "<f4").tobytes() + b[4:], "beyond the calendar"),
        (lambda b: b + b[4:40], "run past the calendar"),
    ],
)
def test_corrupt_bin_fails_that_instrument(small: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _bin(small, "sh600036", "close")
    path.write_bytes(damage(path.read_bytes()))
    store = QlibStore.open(small)
    with pytest.raises(DataFormatError, match=message) as info:
        store.read_bars(StockCode.parse("SH600036"))
    assert str(path) in str(info.value) and "'close'" in str(info.value)
    with pytest.raises(LoadErrors) as batch:
        store.features("all", ["open", "close"])
    assert list(batch.value.errors) == ["SH600036"]  # the healthy instrument is not reported
    assert store.read_bars(StockCode.parse("SH600000")).height > 3000


def test_missing_field_is_an_error(small: Path) -> None:
    _bin(small, "sh600036", "volume").unlink()
    store = QlibStore.open(small)
    with pytest.raises(DataFormatError, match=r"SH600036.*'volume'"):
        store.read_bars(StockCode.parse("SH600036"))
    with pytest.raises(LoadErrors, match="volume"):
        store.features(["SH600000", "SH600036"], ["close", "volume"])


def test_validity_from_all_txt_spans(small: Path) -> None:
    path = small / "instruments" / "all.txt"
    lines = path.read_text().splitlines()
    lines = [ln.replace("2026-05-08", "2015-03-02") if ln.startswith("SH600036") else ln for ln in lines]
    path.write_text("\n".join(lines) + "\n")
    store = QlibStore.open(small)
    delisted = store.stocks(valid=False)
    assert delisted["code"].to_list() == ["SH600036"]
    assert delisted["end_date"].to_list() == [dt.date(2015, 3, 2)]
    assert store.stocks()["code"].to_list() == ["SH600000"]


def test_data_version_follows_the_files(small: Path) -> None:
    store = QlibStore.open(small)
    before = store.data_version()
    assert store.data_version() == before
    path = _bin(small, "sh600000", "close")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10_000_000))
    assert store.data_version() != before
