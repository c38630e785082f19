"""Datetime conversion, period labels and the adjustment maps of the Hikyuu adapter."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import Adjust, DataFormatError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.stores.hikyuu import adjust_bars
from hikyuu_qlib.stores.hikyuu.h5 import ms_to_ymdhm, ymdhm_to_ms
from hikyuu_qlib.stores.hikyuu.periods import day_period_labels, minute_period_labels


def _ms(*args: int) -> int:
    return int((dt.datetime(*args) - dt.datetime(1970, 1, 1)).total_seconds() * 1000)


def test_ymdhm_round_trip() -> None:
    values = np.array([199012190000, 200002290000, 201112060000, 202403041455, 210012312359], dtype=np.uint64)
    ms = ymdhm_to_ms(values)
    assert ms.tolist() == [
        _ms(1990, 12, 19),
        _ms(2000, 2, 29),
        _ms(2011, 12, 6),
        _ms(2024, 3, 4, 14, 55),
        _ms(2100, 12, 31, 23, 59),
    ]
    np.testing.assert_array_equal(ms_to_ymdhm(ms), values)


@pytest.mark.parametrize("bad", [201102290000, 201113010000, 201101320000, 201101012460, 0])
def test_invalid_datetimes_are_named(bad: int) -> None:
    with pytest.raises(DataFormatError, match=f"somewhere.*{bad}"):
        ymdhm_to_ms(np.array([201101030000, bad], dtype=np.uint64), where="somewhere")


def test_day_period_labels() -> None:
    days = np.array([_ms(2011, 12, 5), _ms(2011, 12, 6), _ms(2012, 2, 10), _ms(2012, 7, 1)], dtype=np.int64)
    as_dates = lambda ms: [dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(m)) for m in ms]  # noqa: E731
    assert as_dates(day_period_labels(days, "week"))[:3] == [dt.datetime(2011, 12, 9)] * 2 + [
        dt.datetime(2012, 2, 10)
    ]
    assert as_dates(day_period_labels(days, "month"))[2] == dt.datetime(2012, 2, 29)
    assert as_dates(day_period_labels(days, "quarter"))[3] == dt.datetime(2012, 9, 30)
    assert as_dates(day_period_labels(days, "halfyear"))[2] == dt.datetime(2012, 6, 30)
    assert as_dates(day_period_labels(days, "year"))[0] == dt.datetime(2011, 12, 31)


def test_minute_period_labels_follow_sessions() -> None:
    stamps = [(9, 35), (10, 30), (10, 35), (11, 30), (13, 5), (14, 0), (14, 5), (15, 0)]
    ms = np.array([_ms(2024, 3, 4, h, m) for h, m in stamps], dtype=np.int64)
    hours = [(int(v) // 60_000 % 1440) for v in minute_period_labels(ms, 60)]
    assert [(h // 60, h % 60) for h in hours] == [
        (10, 30),
        (10, 30),
        (11, 30),
        (11, 30),
        (14, 0),
        (14, 0),
        (15, 0),
        (15, 0),
    ]
    quarter = [(int(v) // 60_000 % 1440) for v in minute_period_labels(ms, 15)]
    assert [(h // 60, h % 60) for h in quarter][:3] == [(9, 45), (10, 30), (10, 45)]


def _bars(days: list[dt.datetime], closes: list[float]) -> pl.DataFrame:
    c = np.array(closes)
    return pl.DataFrame(
        {
            "code": "SZ000001",
            "datetime": pl.Series(days).cast(DATETIME),
            "open": c,
            "high": c,
            "low": c,
            "close": c,
            "volume": np.full(c.size, 1000.0),
            "amount": c * 1000,
        }
    )


def _weights(rows: list[dict[str, object]]) -> pl.DataFrame:
    cols = [
        "count_as_gift",
        "count_for_sell",
        "price_for_sell",
        "bonus",
        "count_of_increasement",
        "suogu",
        "total_count",
        "free_count",
    ]
    return pl.DataFrame([{**{c: 0.0 for c in cols}, **r} for r in rows]).with_columns(
        pl.col("date").cast(DATETIME)
    )


def test_adjust_two_events_and_window() -> None:
    days = [dt.datetime(2020, 1, d) for d in (2, 3, 6, 7, 8)]
    bars = _bars(days, [10.0, 10.0, 8.0, 8.0, 4.0])
    weights = _weights(
        [
            {"date": dt.datetime(2020, 1, 6), "bonus": 5.0},  # 0.5 yuan a share
            {"date": dt.datetime(2020, 1, 8), "count_as_gift": 10.0},  # 10 for 10: price halves
            {"date": dt.datetime(2020, 1, 7), "total_count": 99.0},  # share counts only: ignored
            {"date": dt.datetime(2020, 3, 1), "count_as_gift": 10.0},  # after the bars: outside the window
        ]
    )
    fwd = adjust_bars(bars, weights, Adjust.FORWARD)
    assert fwd["close"].to_list() == pytest.approx([4.75, 4.75, 4.0, 4.0, 4.0])
    assert fwd["volume"].to_list() == pytest.approx([2000, 2000, 2000, 2000, 1000])
    bwd = adjust_bars(bars, weights, Adjust.BACKWARD)
    assert bwd["close"].to_list() == pytest.approx([10.0, 10.0, 8.5, 8.5, 8.5])
    assert bwd["volume"].to_list() == pytest.approx([1000, 1000, 1000, 1000, 500])
    # amount follows close * volume where the bar moved, and is untouched elsewhere
    assert fwd["amount"][-1] == bars["amount"][-1]
    assert fwd["amount"][0] == pytest.approx(10_000 * (4.75 * 2000) / (10 * 1000))
    assert adjust_bars(bars, weights, Adjust.NONE) is bars
    # a window that starts after the first event does not see it (as Hikyuu's KData)
    late = adjust_bars(bars.slice(3), weights, Adjust.BACKWARD)
    assert late["close"].to_list() == pytest.approx([8.0, 8.0])


def test_suogu_replaces_the_denominator() -> None:
    bars = _bars([dt.datetime(2020, 1, 2), dt.datetime(2020, 1, 3)], [1.0, 10.0])
    weights = _weights(
        [{"date": dt.datetime(2020, 1, 3), "suogu": 0.1, "bonus": 3.0}]
    )  # 10 -> 1 consolidation
    assert adjust_bars(bars, weights, Adjust.FORWARD)["close"].to_list() == pytest.approx([10.0, 10.0])
    assert adjust_bars(bars, weights, Adjust.BACKWARD)["close"].to_list() == pytest.approx([1.0, 1.0])
