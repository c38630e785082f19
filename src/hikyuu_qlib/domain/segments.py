"""The segments of a training run: train, valid and test date ranges, ordered and disjoint."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hikyuu_qlib.domain.dates import DateRange
from hikyuu_qlib.domain.errors import InvalidDateRangeError, InvalidInputError

SEGMENT_NAMES = ("train", "valid", "test")
_DAY_END = dt.time(23, 59, 59)


@dataclass(frozen=True, slots=True)
class Segments(Mapping[str, DateRange]):
    """Train, valid and test :class:`DateRange`\\ s, each optional and inclusive.

    The segments given are ordered and disjoint: each ends before the next one starts (train, then valid,
    then test), or :class:`InvalidInputError`. The object is a read-only mapping of the segments given,
    by name and in that order (``segments["train"]``, ``"valid" in segments``, ``segments.items()``).

    Texts are ``START:END`` (:meth:`parse`, the CLI and the workflow file); a model record keeps the
    segments as dates (:meth:`to_json`: ``{"train": ["2010-01-01", "2014-12-31"], …}``).
    """

    train: DateRange | None = None
    valid: DateRange | None = None
    test: DateRange | None = None

    def __post_init__(self) -> None:
        for name in SEGMENT_NAMES:
            span = getattr(self, name)
            if span is not None and not isinstance(span, DateRange):
                raise InvalidInputError(f"invalid {name} segment {span!r}: expected a DateRange")
        for (first, before), (second, after) in itertools.pairwise(self.items()):
            if not before.end < after.start:
                raise InvalidInputError(
                    f"segments must be ordered and disjoint: {first} {before} does not end before "
                    f"{second} {after} starts"
                )

    # --- the mapping of the segments given ------------------------------------------------------------

    def __getitem__(self, name: str) -> DateRange:
        span: DateRange | None = getattr(self, name) if name in SEGMENT_NAMES else None
        if span is None:
            raise KeyError(name)
        return span

    def __iter__(self) -> Iterator[str]:
        return (name for name in SEGMENT_NAMES if getattr(self, name) is not None)

    def __len__(self) -> int:
        return sum(getattr(self, name) is not None for name in SEGMENT_NAMES)

    def span(self) -> DateRange:
        """The range from the start of the first segment to the end of the last."""
        spans = list(self.values())
        if not spans:
            raise InvalidInputError("no segments: give at least a train segment")
        return DateRange(spans[0].start, spans[-1].end)

    # --- construction -------------------------------------------------------------------------------

    @classmethod
    def parse(
        cls,
        train: str | DateRange | None = None,
        valid: str | DateRange | None = None,
        test: str | DateRange | None = None,
    ) -> Segments:
        """Segments from ``START:END`` texts (either side may be empty) or ranges; ``None`` leaves one out."""
        spans = {}
        for name, value in (("train", train), ("valid", valid), ("test", test)):
            if value is None or isinstance(value, DateRange):
                spans[name] = value
                continue
            try:
                spans[name] = DateRange.parse(value)
            except InvalidDateRangeError as exc:
                raise InvalidDateRangeError(f"{name} segment: {exc}") from None
        return cls(**spans)

    @classmethod
    def of(cls, spans: Mapping[str, str | DateRange]) -> Segments:
        """Segments from a mapping by name (``train``, ``valid``, ``test``) of ``START:END`` texts or ranges."""
        if isinstance(spans, Segments):
            return spans
        _check_names(spans)
        return cls.parse(**spans)

    # --- the record's form --------------------------------------------------------------------------

    def whole_days(self) -> Segments:
        """Each segment from the start of its first day to the end of its last (the form a record keeps)."""
        if all(s.start.time() == dt.time(0) and s.end.time() == _DAY_END for s in self.values()):
            return self
        return Segments.from_json(self.to_json())

    def to_json(self) -> dict[str, list[str]]:
        """The record's form: each segment as ``[first date, last date]`` (ISO dates)."""
        return {
            name: [span.start.date().isoformat(), span.end.date().isoformat()] for name, span in self.items()
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, *, ordered: bool = True) -> Segments:
        """Segments from the record's form (dates or ISO date texts; each segment from the start of its
        first day to the end of its last). ``ordered=False`` skips the order check: the registry reads
        stored records with it (they were checked when they were saved)."""
        if not data:
            return cls()
        _check_names(data)
        spans: dict[str, DateRange] = {}
        for name, value in data.items():
            try:
                first, last = (_as_date(v) for v in value)
            except (TypeError, ValueError):
                raise InvalidInputError(f"invalid {name} segment {value!r}: expected [start, end]") from None
            if first > last:
                raise InvalidInputError(f"inverted {name} segment: {first} is after {last}")
            spans[name] = DateRange.of(first, last)
        if ordered:
            return cls(**spans)
        found = object.__new__(cls)
        for name in SEGMENT_NAMES:
            object.__setattr__(found, name, spans.get(name))
        return found


def _check_names(data: Mapping[str, Any]) -> None:
    unknown = set(data) - set(SEGMENT_NAMES)
    if unknown:
        raise InvalidInputError(
            f"unknown segment(s) {sorted(map(str, unknown))}: expected train, valid, test"
        )


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
