"""The synthetic trading calendar: weekdays minus Chinese-holiday-like closures.

Closures (deterministic, close to but not exactly the exchanges' schedules):

* New Year's Day (1 January);
* the Spring Festival week: lunar new year's eve and the six days after it;
* Qingming (5 April);
* Labour Day (1-3 May);
* National Day week (1-7 October).

Lunar new year dates come from a small table; outside it the date 19 years earlier or later is used
(the Metonic cycle keeps it within a day or two).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

_LUNAR_NEW_YEAR: dict[int, tuple[int, int]] = {
    2000: (2, 5), 2001: (1, 24), 2002: (2, 12), 2003: (2, 1), 2004: (1, 22), 2005: (2, 9),
    2006: (1, 29), 2007: (2, 18), 2008: (2, 7), 2009: (1, 26), 2010: (2, 14), 2011: (2, 3),
    2012: (1, 23), 2013: (2, 10), 2014: (1, 31), 2015: (2, 19), 2016: (2, 8), 2017: (1, 28),
    2018: (2, 16), 2019: (2, 5), 2020: (1, 25), 2021: (2, 12), 2022: (2, 1), 2023: (1, 22),
    2024: (2, 10), 2025: (1, 29), 2026: (2, 17), 2027: (2, 6), 2028: (1, 26), 2029: (2, 13),
    2030: (2, 3),
}  # fmt: skip
_TABLE_FIRST, _TABLE_LAST = min(_LUNAR_NEW_YEAR), max(_LUNAR_NEW_YEAR)


def lunar_new_year(year: int) -> dt.date:
    """The (approximate outside 2000-2030) date of the lunar new year in ``year``."""
    ref = year
    while ref < _TABLE_FIRST:
        ref += 19
    while ref > _TABLE_LAST:
        ref -= 19
    month, day = _LUNAR_NEW_YEAR[ref]
    return dt.date(year, month, day)


def closures(year: int) -> list[dt.date]:
    """Weekday-independent list of closed dates in ``year``."""
    days = [dt.date(year, 1, 1), dt.date(year, 4, 5)]
    days += [dt.date(year, 5, d) for d in (1, 2, 3)]
    days += [dt.date(year, 10, d) for d in range(1, 8)]
    eve = lunar_new_year(year) - dt.timedelta(days=1)
    days += [eve + dt.timedelta(days=k) for k in range(7)]
    return days


def end_of_span(start: dt.date, years: int) -> dt.date:
    """The last day of a span of ``years`` years beginning on ``start``."""
    try:
        after = start.replace(year=start.year + years)
    except ValueError:  # 29 February
        after = start.replace(year=start.year + years, day=28)
    return after - dt.timedelta(days=1)


def trading_days(start: dt.date, years: int) -> np.ndarray:
    """Trading days from ``start`` over ``years`` years, as ascending ``datetime64[D]``."""
    end = end_of_span(start, years)
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D") + 1)
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday: Monday == 0
    closed = np.array(
        [d for y in range(start.year, end.year + 1) for d in closures(y)], dtype="datetime64[D]"
    )
    keep = (weekday < 5) & ~np.isin(days, closed)
    return days[keep]
