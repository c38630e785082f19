"""Period bars from index tables: labels, start rows and vectorised aggregation.

Day files hold ``/week``, ``/month``, ``/quarter``, ``/halfyear`` and ``/year`` index tables; 5-minute
files hold ``/min15``, ``/min30``, ``/min60`` (and ``/hour2``). Each record is ``(datetime, start)``:
the period's label (its end: the week's Friday, the month's last day, …) and the row of ``/data``
where the period begins. A period covers rows ``[start_i, start_{i+1})``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from hikyuu_qlib.domain import DataFormatError, KType
from hikyuu_qlib.stores.hikyuu.h5 import I64, civil_from_days, days_from_civil

F64 = npt.NDArray[np.float64]
_DAY_MS = 86_400_000
_MIN_MS = 60_000

#: index group of each derived ktype, and the base kind ("day" or "min5") it is built from.
DERIVED: dict[KType, tuple[str, str]] = {
    KType.WEEK: ("week", "day"),
    KType.MONTH: ("month", "day"),
    KType.QUARTER: ("quarter", "day"),
    KType.HALFYEAR: ("halfyear", "day"),
    KType.YEAR: ("year", "day"),
    KType.MIN15: ("min15", "min5"),
    KType.MIN30: ("min30", "min5"),
    KType.MIN60: ("min60", "min5"),
}
BASE_KIND: dict[KType, str] = {KType.DAY: "day", KType.MIN: "min", KType.MIN5: "min5"}
DAY_GROUPS: tuple[str, ...] = ("week", "month", "quarter", "halfyear", "year")
MIN5_GROUPS: dict[str, int] = {"min15": 15, "min30": 30, "min60": 60, "hour2": 120}


def day_period_labels(day_ms: I64, group: str) -> I64:
    """The period-end label (ms, midnight) of each day for a day index group."""
    days = np.floor_divide(day_ms, _DAY_MS)
    if group == "week":
        weekday = (days + 3) % 7  # Monday = 0 (1970-01-01 was a Thursday)
        out: I64 = (days + (4 - weekday)) * _DAY_MS
        return out
    year, month, _ = civil_from_days(days)
    span = {"month": 1, "quarter": 3, "halfyear": 6, "year": 12}.get(group)
    if span is None:
        raise ValueError(f"unknown day index group {group!r}")
    last_month = ((month - 1) // span + 1) * span  # 1..12
    next_year = np.where(last_month == 12, year + 1, year)
    next_month = np.where(last_month == 12, 1, last_month + 1)
    first_of_next = days_from_civil(next_year, next_month, np.ones_like(next_month))
    result: I64 = (first_of_next - 1) * _DAY_MS
    return result


def minute_period_labels(ms: I64, minutes: int) -> I64:
    """Session-aware period ends for intraday bars: 09:30-11:30 and 13:00-15:00 sessions.

    A bar labelled ``t`` (its end) belongs to the period ending at the session open plus the next
    multiple of ``minutes`` at or after ``t`` (capped at the session close): 60-minute bars end at
    10:30, 11:30, 14:00 and 15:00.
    """
    days = np.floor_divide(ms, _DAY_MS)
    tod = (ms - days * _DAY_MS) // _MIN_MS  # minutes of the day
    morning = tod <= 11 * 60 + 30
    open_ = np.where(morning, 9 * 60 + 30, 13 * 60)
    close = np.where(morning, 11 * 60 + 30, 15 * 60)
    offset = np.maximum(tod - open_, 0)
    end = open_ + -(-offset // minutes) * minutes
    end = np.where(offset == 0, open_ + minutes, end)
    end = np.minimum(end, close)
    result: I64 = days * _DAY_MS + end * _MIN_MS
    return result


def index_from_labels(labels: I64) -> tuple[I64, I64]:
    """Index table rows from per-bar labels (bars sorted): (period labels, start rows)."""
    if labels.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate(([0], change)).astype(np.int64)
    return labels[starts], starts


def check_starts(starts: npt.NDArray[Any], n: int, where: str) -> I64:
    """Validate an index table's start rows against the data table's length."""
    s = np.asarray(starts).astype(np.int64)
    if s.size and (s[0] < 0 or s[-1] >= n or bool(np.any(np.diff(s) <= 0))):
        raise DataFormatError(f"{where}: index rows are not increasing within 0..{n - 1}")
    return s


def aggregate(
    starts: I64, open_: F64, high: F64, low: F64, close: F64, volume: F64, amount: F64
) -> tuple[F64, F64, F64, F64, F64, F64]:
    """Period bars over rows ``[starts_i, starts_{i+1})``: first open, max high, min low, last close,
    summed volume and amount."""
    if starts.size == 0:
        empty = np.empty(0, dtype=np.float64)
        return empty, empty, empty, empty, empty, empty
    n = open_.shape[0]
    ends = np.append(starts[1:], n) - 1
    return (
        open_[starts],
        np.maximum.reduceat(high, starts),
        np.minimum.reduceat(low, starts),
        close[ends],
        np.add.reduceat(volume, starts),
        np.add.reduceat(amount, starts),
    )
