"""HikyuuStore on the real Hikyuu test data (../shared/data/hikyuu)."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pytest

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
    UnsupportedKTypeError,
)
from hikyuu_qlib.domain.schema import BAR_SCHEMA, STOCK_SCHEMA, WEIGHT_SCHEMA
from hikyuu_qlib.ports import MarketData
from hikyuu_qlib.stores.hikyuu import HikyuuStore

SH600000 = StockCode.parse("SH600000")
CODES = ["SH000001", "SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002", "SZ000004", "SZ000005"]


@pytest.fixture(scope="module")
def store(hikyuu_dir: Path) -> HikyuuStore:
    s = HikyuuStore.open(hikyuu_dir)
    yield s  # type: ignore[misc]
    s.close()


def test_known_bar_in_natural_units(store: HikyuuStore) -> None:
    day = dt.datetime(2011, 12, 6)
    bars = store.read_bars(SH600000, dates=DateRange.of(day, day))
    assert bars.schema == pl.Schema(BAR_SCHEMA)
    row = bars.row(0, named=True)
    assert row["datetime"] == day
    assert (row["open"], row["high"], row["low"], row["close"]) == pytest.approx((8.76, 8.84, 8.70, 8.73))
    assert row["volume"] == 26_440_400  # 264,404 lots
    assert row["amount"] == pytest.approx(232.13e6)  # 232,130 thousand yuan


def test_index_volume_is_not_scaled(store: HikyuuStore, hikyuu_dir: Path) -> None:
    import h5py

    with h5py.File(hikyuu_dir / "sh_day.h5", "r") as f:
        raw = f["data/SH000001"][-1]
    bars = store.read_bars(StockCode.parse("SH000001"))
    assert bars["volume"][-1] == raw["transCount"]
    assert bars["close"][-1] == pytest.approx(raw["closePrice"] / 1000)


def test_protocol_and_metadata(store: HikyuuStore, hikyuu_dir: Path) -> None:
    assert isinstance(store, MarketData)
    assert store.source == f"hikyuu:{hikyuu_dir.resolve()}"  # canonical: absolute, symlinks resolved
    assert store.markets() == [Market.SH, Market.SZ, Market.BJ]
    assert store.ktypes() == {KType.DAY, KType.WEEK, KType.MONTH, KType.QUARTER, KType.HALFYEAR, KType.YEAR}


def test_stocks_filters_match_sql(store: HikyuuStore, hikyuu_dir: Path) -> None:
    conn = sqlite3.connect(hikyuu_dir / "stock.db")
    n_valid_sh_index = conn.execute(
        "SELECT COUNT(*) FROM Stock WHERE marketid = 1 AND type = 2 AND valid = 1"
    ).fetchone()[0]
    n_all = conn.execute("SELECT COUNT(*) FROM Stock").fetchone()[0]
    frame = store.stocks(market=Market.SH, types=[StockType.INDEX])
    assert frame.schema == pl.Schema(STOCK_SCHEMA)
    assert frame.height == n_valid_sh_index > 0
    assert set(frame["type"]) == {2} and set(frame["market"]) == {"SH"} and frame["valid"].all()
    assert store.stocks(valid=None).height == n_all
    row = store.stocks(market=Market.SH).filter(pl.col("code") == "SH600000").row(0, named=True)
    assert row["lot"] == 100 and row["tick"] == pytest.approx(0.01)
    assert row["start_date"] == dt.date(1999, 11, 10) and row["end_date"] is None
    index = frame.filter(pl.col("code") == "SH000001").row(0, named=True)
    assert index["lot"] == 1 and index["tick"] == pytest.approx(0.001)


def test_calendar_is_the_index_dates(store: HikyuuStore) -> None:
    cal = store.calendar()
    days = store.read_bars(StockCode.parse("SH000001"))["datetime"]
    assert cal.to_list() == days.to_list()
    dec = store.calendar(dates=DateRange.of("2011-12-01", "2011-12-31"))
    assert dec.to_list() == [dt.datetime(2011, 12, d) for d in (1, 2, 5, 6)]
    weeks = store.calendar(ktype=KType.WEEK, dates=DateRange.of("2011-11-20", "2011-12-31"))
    assert weeks.to_list() == [dt.datetime(2011, 11, 25), dt.datetime(2011, 12, 2), dt.datetime(2011, 12, 9)]


def test_members(store: HikyuuStore) -> None:
    sh = store.members("sh", DateRange.of("2011-01-01", "2011-12-31"))
    assert sh.filter(pl.col("code") == "SH600000").row(0) == (
        "SH600000",
        dt.datetime(1999, 11, 10),
        dt.datetime(2099, 12, 31),
    )
    assert sh["code"].str.starts_with("SH").all()
    everything = store.members("all")
    assert everything.height > sh.height and {"SZ000001", "SH600000"} <= set(everything["code"])
    assert "SH000001" not in set(everything["code"])  # indices are not members
    early = store.members("all", DateRange.of("1995-01-01", "1995-12-31"))
    assert "SH600000" not in set(early["code"]) and "SZ000001" in set(early["code"])
    with pytest.raises(NotFoundError, match="all, sh, sz, bj"):
        store.members("csi300")


def _expected_periods(day: pl.DataFrame, every: str) -> pl.DataFrame:
    key = pl.col("datetime").dt.truncate(every)
    return (
        day.group_by(key.alias("period"), maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.col("amount").sum(),
            pl.col("datetime").last().alias("last_day"),
        )
        .sort("period")
    )


@pytest.mark.parametrize("code", ["SH600000", "SH000001", "SZ000002"])
@pytest.mark.parametrize(("ktype", "every"), [(KType.WEEK, "1w"), (KType.MONTH, "1mo"), (KType.YEAR, "1y")])
def test_period_bars_aggregate_day_bars(store: HikyuuStore, code: str, ktype: KType, every: str) -> None:
    sc = StockCode.parse(code)
    day = store.read_bars(sc)
    expected = _expected_periods(day, every)
    got = store.read_bars(sc, ktype=ktype)
    assert got.height == expected.height
    for col in ("open", "high", "low", "close", "volume", "amount"):
        np.testing.assert_allclose(got[col].to_numpy(), expected[col].to_numpy(), rtol=1e-12, err_msg=col)
    # the label is the period end: on or after the period's last trading day, within the period
    assert (got["datetime"] >= expected["last_day"]).all()
    assert (got["datetime"].dt.truncate(every) == expected["period"]).all()


def test_period_bars_with_dates(store: HikyuuStore) -> None:
    got = store.read_bars(SH600000, ktype=KType.MONTH, dates=DateRange.of("2011-01-01", "2011-06-30"))
    assert got["datetime"].to_list() == [
        dt.datetime(2011, m, d) for m, d in ((1, 31), (2, 28), (3, 31), (4, 30), (5, 31), (6, 30))
    ]
    day = store.read_bars(SH600000, dates=DateRange.of("2011-06-01", "2011-06-30"))
    assert got["close"][-1] == day["close"][-1] and got["volume"][-1] == day["volume"].sum()


def _events(store: HikyuuStore, code: StockCode) -> list[tuple[dt.datetime, float, float]]:
    """(ex-date, denominator, cash term) of each effective event, straight from the formulas."""
    out = []
    for w in store.weights(code).iter_rows(named=True):
        change = 0.1 * (w["count_as_gift"] + w["count_for_sell"] + w["count_of_increasement"])
        if w["suogu"]:
            den, cash = w["suogu"], 0.0
        else:
            den, cash = 1 + change, w["price_for_sell"] * change - 0.1 * w["bonus"]
        if den != 1 or cash != 0:
            out.append((w["date"], den, cash))
    return out


def test_weights_in_natural_units(store: HikyuuStore) -> None:
    w = store.weights(SH600000)
    assert w.schema == pl.Schema(WEIGHT_SCHEMA)
    last = w.filter(pl.col("date") == dt.datetime(2011, 6, 3)).row(0, named=True)
    assert last["count_as_gift"] == 3.0 and last["bonus"] == pytest.approx(1.6)
    assert store.weights(StockCode.parse("SH000001")).height == 0


def test_forward_adjustment_matches_hikyuu_formula(store: HikyuuStore) -> None:
    raw = store.read_bars(SH600000)
    fwd = store.read_bars(SH600000, adjust=Adjust.FORWARD)
    events = _events(store, SH600000)
    assert len(events) >= 10
    # the last event alone: 10 shares get 3 bonus shares and 1.6 yuan
    prev = events[-2][0]
    mask = (raw["datetime"] < dt.datetime(2011, 6, 3)) & (raw["datetime"] >= prev)
    np.testing.assert_allclose(
        fwd.filter(mask)["close"], (raw.filter(mask)["close"] - 0.16) / 1.3, rtol=1e-12
    )
    # every bar: apply each later event in date order, one at a time
    expected = raw["close"].to_numpy().copy()
    when = raw["datetime"].to_numpy()
    for date, den, cash in events:
        before = when < np.datetime64(date)
        expected[before] = (expected[before] + cash) / den
    np.testing.assert_allclose(fwd["close"].to_numpy(), expected, rtol=1e-12)
    after_last = when >= np.datetime64(events[-1][0])
    np.testing.assert_array_equal(fwd["close"].to_numpy()[after_last], raw["close"].to_numpy()[after_last])
    # volume scales inversely to price multiplier; amount follows close * volume
    traded = raw["volume"].to_numpy() > 0
    ratio = fwd["volume"].to_numpy()[traded] / raw["volume"].to_numpy()[traded]
    assert ratio[0] > 1 and np.all(ratio[after_last[traded]] == 1)


def test_backward_adjustment_matches_hikyuu_formula(store: HikyuuStore) -> None:
    raw = store.read_bars(SH600000)
    bwd = store.read_bars(SH600000, adjust=Adjust.BACKWARD)
    expected = raw["close"].to_numpy().copy()
    when = raw["datetime"].to_numpy()
    for date, den, cash in reversed(_events(store, SH600000)):
        after = when >= np.datetime64(date)
        expected[after] = expected[after] * den - cash
    np.testing.assert_allclose(bwd["close"].to_numpy(), expected, rtol=1e-12)
    first_event = _events(store, SH600000)[0][0]
    before = when < np.datetime64(first_event)
    np.testing.assert_array_equal(bwd["close"].to_numpy()[before], raw["close"].to_numpy()[before])


def test_adjusted_week_bars_aggregate_adjusted_days(store: HikyuuStore) -> None:
    day = store.read_bars(SH600000, adjust=Adjust.FORWARD)
    week = store.read_bars(SH600000, ktype=KType.WEEK, adjust=Adjust.FORWARD)
    expected = _expected_periods(day, "1w")
    np.testing.assert_allclose(week["low"].to_numpy(), expected["low"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(week["open"].to_numpy(), expected["open"].to_numpy(), rtol=1e-12)


def test_errors_name_the_input(store: HikyuuStore, hikyuu_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownCodeError, match="SH689999"):
        store.read_bars(StockCode.parse("SH689999"))
    with pytest.raises(NoBarsError, match=r"SH600601.*sh_day\.h5"):  # listed in stock.db, no table
        store.read_bars(StockCode.parse("SH600601"))
    with pytest.raises(UnsupportedKTypeError, match="min5"):
        store.read_bars(SH600000, ktype=KType.MIN5)
    with pytest.raises(StoreNotFoundError, match=str(tmp_path / "nope")):
        HikyuuStore.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreNotFoundError, match=r"stock\.db"):
        HikyuuStore.open(tmp_path / "empty")


def test_truncated_h5_fails_that_file(hikyuu_dir: Path, tmp_path: Path) -> None:
    shutil.copy(hikyuu_dir / "stock.db", tmp_path / "stock.db")
    shutil.copy(hikyuu_dir / "sz_day.h5", tmp_path / "sz_day.h5")
    blob = (hikyuu_dir / "sh_day.h5").read_bytes()
    (tmp_path / "sh_day.h5").write_bytes(blob[: len(blob) // 3])
    with HikyuuStore.open(tmp_path) as broken:
        with pytest.raises(DataFormatError, match=r"sh_day\.h5"):
            broken.read_bars(SH600000)
        assert broken.read_bars(StockCode.parse("SZ000001")).height > 0  # the other file still reads


def test_ini_forms(hikyuu_dir: Path, tmp_path: Path) -> None:
    ini = tmp_path / "conf" / "hikyuu.ini"
    ini.parent.mkdir()
    ini.write_text(
        f"[hikyuu]\ndatadir = {hikyuu_dir}\n\n[baseinfo]\ntype = sqlite3\ndb = {hikyuu_dir / 'stock.db'}\n\n"
        f"[kdata]\ntype = hdf5\nsh_day = {hikyuu_dir / 'sh_day.h5'}\nsh_min5 = {tmp_path / 'missing.h5'}\n"
    )
    for path in (ini, ini.parent):
        with HikyuuStore.open(path) as s:
            assert s.ktypes() >= {KType.DAY, KType.WEEK} and KType.MIN5 not in s.ktypes()
            assert s.read_bars(SH600000).height == 2836
            with pytest.raises(NoBarsError, match="sz"):  # listed, but the ini names no sz day file
                s.read_bars(StockCode.parse("SZ000001"))
    ini.write_text("[hikyuu]\ndatadir = /no/such/dir\n")
    with pytest.raises(StoreNotFoundError, match="/no/such/dir"):
        HikyuuStore.open(ini)


def test_data_version_tracks_files(hikyuu_dir: Path, tmp_path: Path) -> None:
    for name in ("stock.db", "sh_day.h5"):
        shutil.copy(hikyuu_dir / name, tmp_path / name)
    with HikyuuStore.open(tmp_path) as s:
        before = s.data_version()
        assert before == s.data_version()
        shutil.copy(hikyuu_dir / "sz_day.h5", tmp_path / "sz_day.h5")
    with HikyuuStore.open(tmp_path) as s:
        assert s.data_version() != before


def test_concurrent_reads_from_threads(store: HikyuuStore) -> None:
    codes = [StockCode.parse(c) for c in CODES] * 4
    sequential = [store.read_bars(c, adjust=Adjust.FORWARD) for c in codes]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda c: store.read_bars(c, adjust=Adjust.FORWARD), codes))
    assert all(a.equals(b) for a, b in zip(sequential, parallel, strict=True))


@pytest.mark.parametrize("adjust", list(Adjust))
def test_read_all_equals_read_bars(store: HikyuuStore, adjust: Adjust) -> None:
    frame = store.read_all(adjust=adjust)
    assert frame["code"].unique().sort().to_list() == CODES
    expected = pl.concat([store.read_bars(StockCode.parse(c), adjust=adjust) for c in CODES])
    assert frame.equals(expected)


def test_read_all_on_several_threads(store: HikyuuStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from hikyuu_qlib.stores.hikyuu import bulk

    monkeypatch.setattr(bulk, "MIN_CHUNKS_FOR_THREADS", 1)
    codes = [StockCode.parse(c) for c in ("SZ000002", "SH600000", "SH600005")]
    frame = store.read_all(adjust=Adjust.BACKWARD, codes=codes, workers=2)
    expected = pl.concat([store.read_bars(c, adjust=Adjust.BACKWARD) for c in sorted(codes)])
    assert frame.equals(expected)
    with pytest.raises(UnknownCodeError, match="SH689999"):
        store.read_all(codes=[StockCode.parse("SH689999")])


def test_read_all_with_a_corrupt_file(hikyuu_dir: Path, tmp_path: Path) -> None:
    shutil.copy(hikyuu_dir / "stock.db", tmp_path / "stock.db")
    shutil.copy(hikyuu_dir / "sz_day.h5", tmp_path / "sz_day.h5")
    blob = (hikyuu_dir / "sh_day.h5").read_bytes()
    (tmp_path / "sh_day.h5").write_bytes(blob[: len(blob) // 3])
    with HikyuuStore.open(tmp_path) as broken:
        with pytest.raises(LoadErrors, match=r"sh_day\.h5"):
            broken.read_all()
        from hikyuu_qlib.stores.hikyuu.bulk import read_all

        rest = read_all(broken.files, on_error="skip")
        assert rest["code"].unique().sort().to_list() == [c for c in CODES if c.startswith("SZ")]


@pytest.mark.parametrize("workers", [1, 2])
def test_read_all_with_a_bad_datetime_fails_that_table_only(
    hikyuu_dir: Path, tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import h5py

    from hikyuu_qlib.stores.hikyuu import bulk

    monkeypatch.setattr(bulk, "MIN_CHUNKS_FOR_THREADS", 1)
    for name in ("stock.db", "sh_day.h5", "sz_day.h5"):
        shutil.copy(hikyuu_dir / name, tmp_path / name)
    with h5py.File(tmp_path / "sh_day.h5", "r+") as f:
        table = f["data/SH600004"]
        row = table[10]
        row["datetime"] = 201113450000  # month 13
        table[10] = row
    with HikyuuStore.open(tmp_path) as broken:
        with pytest.raises(LoadErrors, match=r"SH600004.*201113450000"):
            broken.read_all(workers=workers)
        rest = bulk.read_all(broken.files, on_error="skip", workers=workers)
    assert "SH600004" not in rest["code"].unique().to_list()
    with HikyuuStore.open(hikyuu_dir) as good:
        expected = good.read_all(workers=workers).filter(pl.col("code") != "SH600004")
    assert rest.equals(expected)
