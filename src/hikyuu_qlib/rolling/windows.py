"""Rolling windows: the train / valid / test segments of each retraining, on the trading calendar.

The first window takes its train and valid segments from the workflow (or, when the rolling block gives
their lengths, that many trading days counted back from the test start) and tests the first ``step``
trading days of the test span. Each next window moves every segment ``step`` trading days on: a
``sliding`` window moves both ends of train, an ``expanding`` one keeps train's first day. The last
window's test ends on the test span's last trading day, so the test slices tile the test span with no
overlap and no gap.

``gap`` trading days are left out between the last train/valid day and the first test day: with the
label ``Ref($close,-2)/Ref($close,-1) - 1`` a label of day ``t`` reads the close of ``t + 2``, so a gap
of 1 keeps every fitted label from reading a price after the first test day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from hikyuu_qlib.domain import DateRange, InvalidInputError
from hikyuu_qlib.domain.segments import Segments


class RollingSpec(BaseModel):
    """The ``rolling:`` block of a workflow file (lengths and the step in trading days)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: Annotated[int, Field(ge=1, description="trading days between retrainings (each test slice)")] = 20
    mode: Literal["expanding", "sliding"] = "sliding"
    train_days: Annotated[
        int | None, Field(ge=20, description="train length in trading days (default: the workflow's)")
    ] = None
    valid_days: Annotated[
        int | None, Field(ge=1, description="valid length in trading days (default: the workflow's)")
    ] = None
    test: str | None = Field(None, description="the test span START:END (default: the workflow's test)")
    gap: Annotated[int, Field(ge=0, description="trading days left out before each test slice")] = 1
    compare_static: bool = Field(True, description="also run the workflow's static model and compare")


@dataclass(frozen=True, slots=True)
class Window:
    """One retraining: its position and its segments."""

    index: int
    segments: Segments

    @property
    def test(self) -> DateRange:
        return self.segments["test"]


def make_windows(spec: RollingSpec, segments: Segments, calendar: Sequence[dt.date]) -> list[Window]:
    """The windows of ``spec`` over the workflow's ``segments`` on the trading ``calendar`` (ascending)."""
    days = list(calendar)
    test_span = DateRange.parse(spec.test) if spec.test else segments.get("test")
    if test_span is None:
        raise InvalidInputError("rolling needs a test span: give segments.test or rolling.test")
    first_test = _index_on_or_after(days, test_span.start.date(), "the test span's start")
    last_test = _index_on_or_before(days, test_span.end.date(), "the test span's end")
    if last_test < first_test:
        raise InvalidInputError(f"the test span {test_span} has no trading day")
    fit_end = first_test - 1 - spec.gap  # the last day a first window may fit on
    valid = _first_valid(spec, segments, days, fit_end)
    train_end = (valid[0] - 1) if valid else fit_end
    train = _first_train(spec, segments, days, train_end)
    windows: list[Window] = []
    shift = 0
    while first_test + shift <= last_test:
        t0, t1 = first_test + shift, min(first_test + shift + spec.step - 1, last_test)
        train_start = train[0] if spec.mode == "expanding" else train[0] + shift
        spans = {"train": _span(days, train_start, train[1] + shift)}
        if valid:
            spans["valid"] = _span(days, valid[0] + shift, valid[1] + shift)
        spans["test"] = _span(days, t0, t1)
        windows.append(Window(len(windows), Segments.of(spans)))
        shift += spec.step
    return windows


def _first_valid(
    spec: RollingSpec, segments: Segments, days: list[dt.date], fit_end: int
) -> tuple[int, int] | None:
    if spec.valid_days is not None:
        start = fit_end - spec.valid_days + 1
    elif "valid" in segments:
        start = _index_on_or_after(days, segments["valid"].start.date(), "the valid segment's start")
        fit_end = min(fit_end, _index_on_or_before(days, segments["valid"].end.date(), "the valid end"))
    else:
        return None
    if start < 0 or start > fit_end:
        raise InvalidInputError(
            f"the first window's valid segment does not fit before the test span (gap {spec.gap})"
        )
    return start, fit_end


def _first_train(spec: RollingSpec, segments: Segments, days: list[dt.date], end: int) -> tuple[int, int]:
    if spec.train_days is not None:
        start = end - spec.train_days + 1
    else:
        start = _index_on_or_after(days, segments["train"].start.date(), "the train segment's start")
        end = min(end, _index_on_or_before(days, segments["train"].end.date(), "the train segment's end"))
    if start < 0 or end - start + 1 < 20:
        raise InvalidInputError(
            "the first window's train segment has fewer than 20 trading days in the store: "
            "move the test span later or shorten rolling.train_days"
        )
    return start, end


def _span(days: list[dt.date], first: int, last: int) -> DateRange:
    return DateRange.of(days[first], days[last])


def _index_on_or_after(days: list[dt.date], day: dt.date, what: str) -> int:
    import bisect

    i = bisect.bisect_left(days, day)
    if i >= len(days):
        raise InvalidInputError(f"{what} {day} is after the store's last trading day {days[-1]}")
    return i


def _index_on_or_before(days: list[dt.date], day: dt.date, what: str) -> int:
    import bisect

    i = bisect.bisect_right(days, day) - 1
    if i < 0:
        raise InvalidInputError(f"{what} {day} is before the store's first trading day {days[0]}")
    return i
