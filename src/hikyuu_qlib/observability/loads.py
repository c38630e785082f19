"""Timing, counting and tracing of market data loads.

One load (a client's ``load_many``/``bars`` call, a feature source's ``features`` call) is one
``hq_data_load_duration_seconds`` observation by store kind (``hikyuu``, ``qlib``, ``synthetic``) and ktype,
its rows in ``hq_data_bars_loaded_total``, the error type of each code that failed in
``hq_data_load_errors_total``, and with tracing on one span ``data.load`` whose attributes are the code
count, the bar count and the ktype: one span per load, none per code.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeVar

import polars as pl

from hikyuu_qlib.domain import DateRange, HQError, LoadErrors
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.ports import DataSpans, FeatureSource

R = TypeVar("R")

#: ktype of feature loads: research reads daily fields.
FEATURE_KTYPE = "day"


def store_kind(source: str) -> str:
    """The kind of a store from its source spec (``hikyuu:/data`` -> ``hikyuu``)."""
    return source.split(":", 1)[0] or "unknown"


class LoadObserver:
    """Records the loads of one store (see the module)."""

    __slots__ = ("kind", "telemetry")

    def __init__(self, telemetry: Telemetry, source: str) -> None:
        self.telemetry = telemetry
        self.kind = store_kind(source)

    def _attributes(self, ktype: str, codes: int) -> dict[str, str | int]:
        return {"hq.store_kind": self.kind, "hq.ktype": ktype, "hq.codes": codes}

    def _record(
        self, span: object, ktype: str, seconds: float, bars: int, errors: Mapping[str, BaseException]
    ) -> None:
        self.telemetry.metrics.data_load(
            self.kind, ktype, seconds, bars, (type(e).__name__ for e in errors.values())
        )
        if span is not None:
            span.set_attributes({"hq.bars": bars, "hq.failed_codes": len(errors)})  # type: ignore[attr-defined]

    def call(
        self,
        ktype: str,
        codes: int,
        fn: Callable[[], R],
        outcome: Callable[[R], tuple[int, Mapping[str, BaseException]]],
    ) -> R:
        """``fn()`` as one load of ``codes`` codes; ``outcome(result)`` gives its bar count and errors. A
        load that raises :class:`LoadErrors` counts its codes' errors; other errors count once by type."""
        with self.telemetry.span("data.load", self._attributes(ktype, codes)) as span:
            started = time.perf_counter()
            try:
                result = fn()
            except LoadErrors as exc:
                self._record(span, ktype, time.perf_counter() - started, 0, exc.errors)
                raise
            except HQError as exc:
                self._record(span, ktype, time.perf_counter() - started, 0, {"": exc})
                raise
            bars, errors = outcome(result)
            self._record(span, ktype, time.perf_counter() - started, bars, errors)
            return result

    @contextmanager
    def batch(self, ktype: str, codes: int) -> Iterator[LoadTally]:
        """A load made of one read per code that the caller times itself (an export: reads and writes
        alternate): one observation of the summed read time, the bars read, the error type of each code that
        failed; traced, one ``data.load`` span around the whole batch (none per code)."""
        tally = LoadTally()
        with self.telemetry.span("data.load", self._attributes(ktype, codes)) as span:
            try:
                yield tally
            finally:
                if span is not None:
                    span.set_attribute("hq.read_seconds", tally.seconds)
                self._record(span, ktype, tally.seconds, tally.bars, tally.errors)

    async def acall(
        self,
        ktype: str,
        codes: int,
        fn: Callable[[], Awaitable[R]],
        outcome: Callable[[R], tuple[int, Mapping[str, BaseException]]],
    ) -> R:
        """The async twin of :meth:`call`."""
        with self.telemetry.span("data.load", self._attributes(ktype, codes)) as span:
            started = time.perf_counter()
            try:
                result = await fn()
            except LoadErrors as exc:
                self._record(span, ktype, time.perf_counter() - started, 0, exc.errors)
                raise
            except HQError as exc:
                self._record(span, ktype, time.perf_counter() - started, 0, {"": exc})
                raise
            bars, errors = outcome(result)
            self._record(span, ktype, time.perf_counter() - started, bars, errors)
            return result


class LoadTally:
    """The reads of a batch load (see :meth:`LoadObserver.batch`): their time, bars and failures."""

    __slots__ = ("bars", "errors", "seconds")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.bars = 0
        self.errors: dict[str, BaseException] = {}

    def read(self, seconds: float, bars: int) -> None:
        """One code read (``bars`` 0: it had none)."""
        self.seconds += seconds
        self.bars += bars

    def failed(self, code: str, seconds: float, error: BaseException) -> None:
        """One code whose read failed."""
        self.seconds += seconds
        self.errors[code] = error


@contextmanager
def batch_load(telemetry: Telemetry | None, source: str, ktype: str, codes: int) -> Iterator[LoadTally]:
    """:meth:`LoadObserver.batch` of a store (by its source spec) when ``telemetry`` is active; else a tally
    that records nothing."""
    if telemetry is None or not telemetry.active:
        yield LoadTally()
        return
    with LoadObserver(telemetry, source).batch(ktype, codes) as tally:
        yield tally


def _frame_outcome(frame: pl.DataFrame) -> tuple[int, Mapping[str, BaseException]]:
    return frame.height, {}


class ObservedFeatureSource:
    """A feature source whose ``features`` loads are recorded (see the module); everything else is the
    wrapped source's."""

    def __init__(self, source: FeatureSource, telemetry: Telemetry) -> None:
        self.wrapped = source
        self._observer = LoadObserver(telemetry, source.source)

    def __repr__(self) -> str:
        return repr(self.wrapped)

    @property
    def source(self) -> str:
        return self.wrapped.source

    def data_version(self) -> str:
        return self.wrapped.data_version()

    def calendar(self, *, dates: DateRange | None = None) -> pl.Series:
        return self.wrapped.calendar(dates=dates)

    def members(self, universe: str, dates: DateRange | None = None) -> pl.DataFrame:
        return self.wrapped.members(universe, dates)

    def fields(self, codes: Sequence[str] | None = None) -> frozenset[str]:
        return self.wrapped.fields(codes)

    def data_spans(self) -> pl.DataFrame | None:
        return self.wrapped.data_spans() if isinstance(self.wrapped, DataSpans) else None

    def features(
        self, codes: Sequence[str], fields: Sequence[str], dates: DateRange | None = None, /
    ) -> pl.DataFrame:
        return self._observer.call(
            FEATURE_KTYPE, len(codes), lambda: self.wrapped.features(codes, fields, dates), _frame_outcome
        )
