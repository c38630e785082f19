"""Date ranges and date parsing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hikyuu_qlib.domain.errors import InvalidDateRangeError

_MIN = dt.datetime(1990, 1, 1)
_MAX = dt.datetime(2099, 12, 31, 23, 59, 59)
_EPOCH = dt.datetime(1970, 1, 1)
_MS = dt.timedelta(milliseconds=1)


def parse_datetime(value: str | dt.date | dt.datetime | int, *, field: str = "date") -> dt.datetime:
    """Parse ``YYYY-MM-DD``, ``YYYYMMDD``, ``YYYY-MM-DD HH:MM[:SS]`` or a date/datetime object."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    text = str(value).strip()
    formats = ("%Y-%m-%d", "%Y%m%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d")
    for fmt in formats:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise InvalidDateRangeError(f"invalid {field} {value!r}: expected YYYY-MM-DD or YYYYMMDD")


@dataclass(frozen=True, slots=True)
class DateRange:
    """A closed range of datetimes ``[start, end]``; ``start <= end`` always holds."""

    start: dt.datetime = _MIN
    end: dt.datetime = _MAX

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise InvalidDateRangeError(
                f"inverted date range: start {self.start:%Y-%m-%d} is after end {self.end:%Y-%m-%d}"
            )

    @classmethod
    def of(
        cls,
        start: str | dt.date | dt.datetime | int | None = None,
        end: str | dt.date | dt.datetime | int | None = None,
    ) -> DateRange:
        """Build a range from optional bounds; a bare end date includes that whole day."""
        lo = _MIN if start is None else parse_datetime(start, field="start date")
        hi = _MAX if end is None else parse_datetime(end, field="end date")
        if end is not None and not isinstance(end, dt.datetime) and hi.time() == dt.time(0):
            hi = hi.replace(hour=23, minute=59, second=59)
        return cls(lo, hi)

    @classmethod
    def parse(cls, text: str) -> DateRange:
        """Parse ``START:END`` where either side may be empty."""
        start, sep, end = text.partition(":")
        if not sep:
            raise InvalidDateRangeError(
                f"invalid date range {text!r}: expected START:END, e.g. 2010-01-01:2014-12-31"
            )
        return cls.of(start or None, end or None)

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d}:{self.end:%Y-%m-%d}"

    def contains(self, when: dt.datetime) -> bool:
        return self.start <= when <= self.end

    def ms_bounds(self) -> tuple[int, int]:
        """``start`` and ``end`` as epoch milliseconds, the integers of a ``Datetime("ms")`` column (naive
        datetimes are taken as they stand, an aware one in UTC; below a millisecond is dropped)."""
        return _epoch_ms(self.start), _epoch_ms(self.end)

    def calendar_slice(self, calendar: npt.NDArray[Any]) -> slice:
        """The positions of the ascending ``calendar`` inside the range, as a slice (empty when none).

        ``calendar`` holds ``datetime64`` values or epoch milliseconds (``int64``), e.g. a trading calendar
        or one code's bar times. ``start`` rounds up to the next entry and ``end`` down to the previous
        one, the rule of Qlib's ``locate_index``: ``calendar[range.calendar_slice(calendar)]`` is every
        entry ``start <= t <= end``.
        """
        values = np.asarray(calendar)
        lo_ms, hi_ms = self.ms_bounds()
        if values.dtype.kind == "M":
            lo: Any = np.datetime64(lo_ms, "ms").astype(values.dtype)
            hi: Any = np.datetime64(hi_ms, "ms").astype(values.dtype)
        else:
            lo, hi = lo_ms, hi_ms
        return slice(
            int(np.searchsorted(values, lo, side="left")), int(np.searchsorted(values, hi, side="right"))
        )


def _epoch_ms(when: dt.datetime) -> int:
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return (when - _EPOCH) // _MS
