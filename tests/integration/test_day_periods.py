"""Week … year bars from day bars by Hikyuu's rules: against the real Hikyuu store's index tables, and on
the real Qlib store (which has no such tables) against the Hikyuu store for the codes both hold."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from hikyuu_qlib.domain import Adjust, DateRange, KType
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.periods import aggregate_periods, period_calendar
from hikyuu_qlib.stores.qlib import QlibStore

PERIODS = [KType.WEEK, KType.MONTH, KType.QUARTER, KType.HALFYEAR, KType.YEAR]
#: The days both stores hold: the Qlib store starts on 2010-01-04, the Hikyuu store ends on 2011-12-06.
OVERLAP = DateRange.of("2010-01-04", "2011-12-06")
#: Stocks in both stores (SH000001 too, but the two stores count an index's volume in other units).
SHARED = ["SH600000", "SH600004", "SZ000001", "SZ000002"]
#: Half a tick: the Qlib data set keeps adjusted float32 prices, so ``$close / $factor`` is off by up to
#: 0.001 yuan from the traded price (measured: 0.0010 on SZ000001).
HALF_TICK = 0.005


@pytest.fixture(scope="module")
def hikyuu(hikyuu_dir: Path) -> HikyuuStore:
    return HikyuuStore.open(hikyuu_dir)


@pytest.fixture(scope="module")
def qlib(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


def _close_enough(a: pl.Series, b: pl.Series, rel: float) -> bool:
    return bool(((a - b).abs() <= rel * b.abs() + 1e-9).all())


@pytest.mark.parametrize("adjust", [Adjust.NONE, Adjust.FORWARD])
@pytest.mark.parametrize("ktype", PERIODS)
def test_the_rules_rebuild_hikyuu_index_tables(hikyuu: HikyuuStore, ktype: KType, adjust: Adjust) -> None:
    """Every code with bars, its whole history (1990–2011): same labels, same bars."""
    codes = hikyuu.stocks(valid=None).filter(pl.col("has_data"))["code"].to_list()
    assert len(codes) == 8
    days, errors = hikyuu.read_many(codes, adjust=adjust)
    assert not errors
    ours = aggregate_periods(days, ktype)
    tables, errors = hikyuu.read_many(codes, ktype=ktype, adjust=adjust)
    assert not errors
    assert ours.select("code", "datetime").equals(tables.select("code", "datetime"))
    for column in ("open", "high", "low", "close", "volume", "amount"):
        assert _close_enough(ours[column], tables[column], 1e-12), column
    assert tables.height > {KType.WEEK: 6000, KType.MONTH: 1500}.get(ktype, 100)


@pytest.mark.parametrize("ktype", PERIODS)
def test_qlib_periods_equal_hikyuu_index_tables(qlib: QlibStore, hikyuu: HikyuuStore, ktype: KType) -> None:
    """Raw prices in both stores: same periods and labels, prices within half a tick, and the same volume
    (the Qlib data set keeps traded shares in ``$volume``, not divided by ``$factor``: its raw bars serve
    them as they are)."""
    ours, errors = qlib.read_many(SHARED, ktype=ktype, dates=OVERLAP)
    assert not errors
    ref, errors = hikyuu.read_many(SHARED, ktype=ktype, dates=OVERLAP)
    assert not errors
    if ktype is KType.WEEK:  # the Hikyuu store's last week is cut short on 2011-12-06: both stop before it
        assert ours["datetime"].max() == ref["datetime"].max() == dt.datetime(2011, 12, 2)
    assert ours.select("code", "datetime").equals(ref.select("code", "datetime"))
    assert ours.height >= len(SHARED) * {KType.WEEK: 90, KType.MONTH: 22}.get(ktype, 1)
    for column in ("open", "high", "low", "close"):
        worst = (ours[column] - ref[column]).abs().max()
        assert isinstance(worst, float) and worst <= HALF_TICK, f"{column}: {worst}"
    # the data set's day volumes are off Hikyuu's by up to 99 shares (SH600004 on 2010-02-08: 7,534,401
    # against 7,534,500; a relative 6.8e-5 at most on a day, 3.9e-5 on a week)
    assert _close_enough(ours["volume"], ref["volume"], 1e-4)


def test_suspended_days_take_no_part(qlib: QlibStore, hikyuu: HikyuuStore) -> None:
    """SH600000 was suspended from 2010-02-26 to 2010-03-10: the Qlib store pads those days at the last close
    with volume 0, the Hikyuu store has no row. Neither has a bar for the weeks without a traded day."""
    span = DateRange.of("2010-02-20", "2010-03-20")
    padded = qlib.read_bars("SH600000", dates=span).filter(pl.col("volume") == 0)
    assert padded.height == 9
    weeks = qlib.read_bars("SH600000", ktype=KType.WEEK, dates=span)
    assert (
        weeks["datetime"].to_list()
        == hikyuu.read_bars("SH600000", ktype=KType.WEEK, dates=span)["datetime"].to_list()
    )
    assert dt.datetime(2010, 3, 5) not in weeks["datetime"].to_list()


def test_qlib_calendar_and_ktypes_of_periods(qlib: QlibStore, hikyuu: HikyuuStore) -> None:
    assert set(PERIODS) <= qlib.ktypes()
    for ktype in PERIODS:
        ours = qlib.calendar(ktype=ktype, dates=OVERLAP)
        every = period_calendar(qlib.calendar(), ktype)  # the labels within the dates, as for the bars
        assert ours.equals(every.filter(every.is_between(OVERLAP.start, OVERLAP.end)))
        # the Hikyuu store's calendar of SH000001's periods, on the days both hold
        ref = hikyuu.calendar(ktype=ktype, dates=DateRange.of("2010-01-08", "2011-12-02"))
        assert ours.filter(ours.is_between(ref.min(), ref.max())).to_list() == ref.to_list()


def test_period_labels_are_the_calendar_ends() -> None:
    days = pl.Series("datetime", [dt.datetime(2024, 2, 26), dt.datetime(2024, 3, 3), dt.datetime(2024, 7, 1)])
    expect = {
        KType.WEEK: [dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 1), dt.datetime(2024, 7, 5)],
        KType.MONTH: [dt.datetime(2024, 2, 29), dt.datetime(2024, 3, 31), dt.datetime(2024, 7, 31)],
        KType.QUARTER: [dt.datetime(2024, 3, 31), dt.datetime(2024, 3, 31), dt.datetime(2024, 9, 30)],
        KType.HALFYEAR: [dt.datetime(2024, 6, 30), dt.datetime(2024, 6, 30), dt.datetime(2024, 12, 31)],
        KType.YEAR: [dt.datetime(2024, 12, 31), dt.datetime(2024, 12, 31), dt.datetime(2024, 12, 31)],
    }
    for ktype, labels in expect.items():
        assert period_calendar(days, ktype).to_list() == list(dict.fromkeys(labels)), ktype
