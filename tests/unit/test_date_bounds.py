"""Dates to calendar positions, one helper: ``DateRange.ms_bounds()`` and ``DateRange.calendar_slice()``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.stores.qlib.calendar import read_calendar

RANGES = [
    DateRange.of("2010-01-01", "2010-01-31"),  # starts on a holiday: rounds up to the next trading day
    DateRange.of("2015-10-01", "2015-10-07"),  # the National Day week: no trading day at all
    DateRange.of("2020-12-31", "2021-01-04"),
    DateRange.of(),  # everything
    DateRange(dt.datetime(2011, 3, 4, 9, 31, 12, 345678), dt.datetime(2011, 3, 4, 14, 0)),
]


@pytest.mark.parametrize("dates", RANGES, ids=str)
def test_ms_bounds_are_the_integers_of_a_datetime_ms_column(dates: DateRange) -> None:
    as_column = pl.Series([dates.start, dates.end]).cast(DATETIME).cast(pl.Int64).to_list()
    assert list(dates.ms_bounds()) == as_column
    assert dates.ms_bounds()[0] == int(np.datetime64(dates.start, "ms").astype(np.int64))


def test_an_aware_datetime_is_taken_in_utc() -> None:
    beijing = dt.timezone(dt.timedelta(hours=8))
    aware = DateRange(dt.datetime(2020, 1, 2, 8, 0, tzinfo=beijing), dt.datetime(2020, 1, 3, tzinfo=dt.UTC))
    assert aware.ms_bounds() == DateRange(dt.datetime(2020, 1, 2), dt.datetime(2020, 1, 3)).ms_bounds()


@pytest.mark.parametrize("dates", RANGES, ids=str)
def test_calendar_slice_is_every_entry_inside_the_range(qlib_dir: Path, dates: DateRange) -> None:
    calendar = read_calendar(qlib_dir / "calendars" / "day.txt")  # datetime64[ms], real trading days
    inside = dates.calendar_slice(calendar)
    lo, hi = np.datetime64(dates.start, "ms"), np.datetime64(dates.end, "ms")
    expected = np.flatnonzero((calendar >= lo) & (calendar <= hi))
    assert list(range(len(calendar))[inside]) == expected.tolist()
    # the same positions from epoch milliseconds (a code's bar times) and from another datetime unit
    assert dates.calendar_slice(calendar.view(np.int64)) == inside
    assert dates.calendar_slice(calendar.astype("datetime64[ns]")) == inside


def test_a_range_without_trading_days_is_an_empty_slice_at_its_place(qlib_dir: Path) -> None:
    calendar = read_calendar(qlib_dir / "calendars" / "day.txt")
    holiday = DateRange.of("2015-10-01", "2015-10-07").calendar_slice(calendar)
    assert holiday.start == holiday.stop and calendar[holiday.start] == np.datetime64("2015-10-08")
    after = DateRange.of("2099-01-01", "2099-12-31").calendar_slice(calendar)
    assert after == slice(len(calendar), len(calendar))
