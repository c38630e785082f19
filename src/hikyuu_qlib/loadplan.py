"""The load plan that the sync and the async market-data clients share (:mod:`hikyuu_qlib.marketdata`).

A client call is planned here, then run by the client: directly or on threads (sync), or on the
client's bounded executor (async). The plan holds everything but the running:

- **Query parsing**: :class:`BarQuery` (period, adjustment, dates) and :func:`parse_code_list` (codes
  that do not parse are errors keyed by the text given; repeats are dropped).
- **The read mode** (:class:`ReadMode`): a store that reads many codes in one pass
  (:class:`~hikyuu_qlib.ports.BatchBarReader`) gets every code in **one** ``read_many`` call, whatever the
  concurrency asked: the store parallelises its own pass (the Hikyuu bulk reader decodes on every core),
  and splitting a whole-market load into runs only repeats its fixed costs and adds a concatenation.
  Other stores are read code by code, one after another (``concurrency`` 1, or one code) or with at most
  ``concurrency`` reads in flight.
- **The batch fallback, once** (:func:`read_batch`): a store's ``read_many`` reports per-code errors
  itself, or raises when the batch as a whole cannot be read; then the codes are read one by one
  (:func:`read_each`), so that only the failing codes are reported. A query the store cannot serve
  (:class:`~hikyuu_qlib.domain.InvalidInputError`, e.g. a ktype it lacks) fails the call instead: every
  code would fail the same way.
- **Folding** per-code outcomes into a :class:`LoadResult` (:meth:`LoadPlan.fold`): codes without bars
  (:class:`~hikyuu_qlib.domain.NoBarsError`) go to ``without_bars``, other errors to ``errors``.
- **Chunking** a stream (:class:`StreamPlan`, :class:`StreamFold`): exact ``chunk_rows``-row frames, codes
  without bars skipped and counted, the first failing code raised.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import polars as pl

from hikyuu_qlib.domain import (
    Adjust,
    DateRange,
    HQError,
    InvalidInputError,
    KType,
    LoadErrors,
    NoBarsError,
    StockCode,
)
from hikyuu_qlib.domain.schema import empty_bars
from hikyuu_qlib.ports import BatchBarReader, MarketData

log = logging.getLogger("hikyuu_qlib.marketdata")

DateLike = str | dt.date | dt.datetime | int | None
CodeLike = str | StockCode
DEFAULT_CHUNK_ROWS = 250_000

#: One code's outcome: its bars, or the error reading it raised.
Outcome = pl.DataFrame | HQError


@dataclass(frozen=True, slots=True)
class BarQuery:
    """What to read for each code: period, adjustment and dates."""

    ktype: KType = KType.DAY
    adjust: Adjust = Adjust.NONE
    dates: DateRange | None = None

    @classmethod
    def of(
        cls,
        start: DateLike = None,
        end: DateLike = None,
        ktype: KType | str = KType.DAY,
        adjust: Adjust | str = Adjust.NONE,
    ) -> BarQuery:
        return cls(
            ktype=ktype if isinstance(ktype, KType) else KType.parse(ktype),
            adjust=adjust if isinstance(adjust, Adjust) else Adjust.parse(adjust),
            dates=None if start is None and end is None else DateRange.of(start, end),
        )


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The bars of every code that loaded, the error of every code that failed, and the codes that the
    store lists but holds no bars for (``without_bars``, sorted; not failures)."""

    frame: pl.DataFrame
    errors: dict[str, HQError] = field(default_factory=dict)
    without_bars: tuple[str, ...] = ()

    @classmethod
    def of(cls, frame: pl.DataFrame, outcomes: dict[str, HQError], source: str = "") -> LoadResult:
        """Split per-code outcomes into errors and codes without bars, and log them (see the module)."""
        errors = {c: e for c, e in outcomes.items() if not isinstance(e, NoBarsError)}
        without = tuple(sorted(c for c, e in outcomes.items() if isinstance(e, NoBarsError)))
        _log_failures(errors)
        log_without_bars(without, source)
        return cls(frame, errors, without)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error_messages(self) -> dict[str, str]:
        return {code: str(err) for code, err in sorted(self.errors.items())}

    def raise_for_errors(self) -> pl.DataFrame:
        """The frame, or :class:`LoadErrors` when any code failed."""
        if self.errors:
            raise LoadErrors(self.errors)
        return self.frame


def parse_code_list(codes: CodeLike | Iterable[CodeLike]) -> tuple[list[StockCode], dict[str, HQError]]:
    """Parse codes, keeping the unparseable ones as errors (keyed by the text given) and dropping repeats."""
    items: Iterable[CodeLike] = [codes] if isinstance(codes, str | StockCode) else codes
    parsed: dict[StockCode, None] = {}
    errors: dict[str, HQError] = {}
    for item in items:
        try:
            parsed[StockCode.parse(item)] = None
        except HQError as exc:
            errors[str(item)] = exc
    if not parsed and not errors:
        raise InvalidInputError("no stock codes given")
    return list(parsed), errors


def combine(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate per-code frames (each sorted by datetime, or many codes sorted by (code, datetime)) in
    code order. A single frame is returned as it is: nothing to sort or copy."""
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_bars()
    if len(frames) == 1:
        return frames[0]
    frames = sorted(frames, key=lambda f: f["code"][0])
    return pl.concat(frames, how="diagonal_relaxed", rechunk=True)


# -- reads (blocking: the sync client runs them on its thread or pool, the async one on its executor) --


def read_one(store: MarketData, code: StockCode, query: BarQuery) -> pl.DataFrame:
    return store.read_bars(code, ktype=query.ktype, adjust=query.adjust, dates=query.dates)


def read_outcome(store: MarketData, code: StockCode, query: BarQuery) -> Outcome:
    """One code's bars, or the :class:`HQError` reading it raised."""
    try:
        return read_one(store, code, query)
    except HQError as exc:
        return exc


def read_each(
    store: MarketData, codes: Sequence[StockCode], query: BarQuery
) -> tuple[pl.DataFrame, dict[str, HQError]]:
    """``read_bars`` of each code, one after another: the bars of the codes that loaded (in the codes'
    order; pass them sorted for a frame sorted by code) and each failing code's error."""
    frames: list[pl.DataFrame] = []
    errors: dict[str, HQError] = {}
    for code in codes:
        outcome = read_outcome(store, code, query)
        if isinstance(outcome, HQError):
            errors[str(code)] = outcome
        else:
            frames.append(outcome)
    return combine(frames), errors


def read_batch(
    store: BatchBarReader, codes: Sequence[StockCode], query: BarQuery
) -> tuple[pl.DataFrame, dict[str, HQError]]:
    """The codes' bars in one ``read_many`` pass; when the store cannot read the batch as a whole (it
    raises), code by code (:func:`read_each`), so that only the failing codes are reported. An invalid
    query (:class:`InvalidInputError`) is raised as it is."""
    try:
        return store.read_many(codes, ktype=query.ktype, adjust=query.adjust, dates=query.dates)
    except InvalidInputError:
        raise
    except HQError as exc:
        if not isinstance(store, MarketData):
            raise
        log.info("batch read of %d code(s) failed (%s); reading them one by one", len(codes), exc)
        return read_each(store, codes, query)


# -- load_many ---------------------------------------------------------------------------------------------


class ReadMode(StrEnum):
    """How a :class:`LoadPlan` reads its codes."""

    BATCH = "batch"  # one read_many pass over every code (sorted)
    SERIAL = "serial"  # read_bars of one code after another
    POOL = "pool"  # read_bars with at most ``concurrency`` reads in flight


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How one ``load_many`` call reads its codes, and how the outcomes become a :class:`LoadResult`."""

    query: BarQuery
    codes: tuple[StockCode, ...]
    unparsed: dict[str, HQError]
    mode: ReadMode
    concurrency: int
    source: str

    @classmethod
    def of(
        cls,
        store: MarketData,
        codes: CodeLike | Iterable[CodeLike],
        query: BarQuery,
        concurrency: int,
    ) -> LoadPlan:
        parsed, unparsed = parse_code_list(codes)
        concurrency = max(1, concurrency)
        if isinstance(store, BatchBarReader) and parsed:
            mode, parsed = ReadMode.BATCH, sorted(parsed)
        elif concurrency == 1 or len(parsed) <= 1:
            mode = ReadMode.SERIAL
        else:
            mode = ReadMode.POOL
        return cls(query, tuple(parsed), unparsed, mode, concurrency, store.source)

    def read_batch(self, store: MarketData) -> LoadResult:
        """Run a :attr:`ReadMode.BATCH` plan to its result (blocking)."""
        if not isinstance(store, BatchBarReader):
            raise TypeError(f"{type(store).__name__} does not read batches")
        frame, errors = read_batch(store, self.codes, self.query)
        return self.fold_batch(frame, errors)

    def fold_batch(self, frame: pl.DataFrame, errors: dict[str, HQError]) -> LoadResult:
        """The result of a batch read: its frame, its errors and the codes that did not parse."""
        return LoadResult.of(frame, {**self.unparsed, **errors}, self.source)

    def fold(self, outcomes: Iterable[tuple[StockCode, Outcome]]) -> LoadResult:
        """The result of per-code reads: the frames in code order, the errors, the codes without bars."""
        frames: list[pl.DataFrame] = []
        errors = dict(self.unparsed)
        for code, outcome in outcomes:
            if isinstance(outcome, HQError):
                errors[str(code)] = outcome
            else:
                frames.append(outcome)
        return LoadResult.of(combine(frames), errors, self.source)


# -- stream ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """What one ``stream`` call reads: codes in the order given, each read on its own, with at most
    ``concurrency`` reads in flight (only those codes are held in memory beyond the current chunk)."""

    query: BarQuery
    codes: tuple[StockCode, ...]
    chunk_rows: int
    concurrency: int
    source: str

    @classmethod
    def of(
        cls,
        store: MarketData,
        codes: CodeLike | Iterable[CodeLike],
        query: BarQuery,
        chunk_rows: int,
        concurrency: int,
    ) -> StreamPlan:
        """The plan; :class:`InvalidInputError` for a chunk size below 1, :class:`LoadErrors` for codes
        that do not parse (before anything is read)."""
        if chunk_rows < 1:
            raise InvalidInputError(f"chunk_rows must be >= 1, got {chunk_rows}")
        parsed, unparsed = parse_code_list(codes)
        if unparsed:
            raise LoadErrors(unparsed)
        return cls(query, tuple(parsed), chunk_rows, max(1, concurrency), store.source)

    def fold(self) -> StreamFold:
        return StreamFold(self)


class StreamFold:
    """Turns the per-code outcomes of a stream, in code order, into its chunks."""

    def __init__(self, plan: StreamPlan) -> None:
        self._plan = plan
        self._buffer = _ChunkBuffer(plan.chunk_rows)
        self._without: list[str] = []

    def push(self, code: StockCode, outcome: Outcome) -> Iterator[pl.DataFrame]:
        """The chunks that ``code``'s bars complete; a code without bars is skipped, a failing code raises
        :class:`LoadErrors` (the chunks before it were yielded)."""
        if isinstance(outcome, NoBarsError):
            self._without.append(str(code))
            return iter(())
        if isinstance(outcome, HQError):
            raise LoadErrors({str(code): outcome}) from outcome
        return self._buffer.push(outcome)

    def finish(self) -> Iterator[pl.DataFrame]:
        """The last, shorter chunk; logs the codes without bars."""
        yield from self._buffer.flush()
        log_without_bars(tuple(self._without), self._plan.source)


class _ChunkBuffer:
    """Accumulates frames and releases exact ``chunk_rows``-row slices."""

    def __init__(self, chunk_rows: int) -> None:
        self._chunk_rows = chunk_rows
        self._parts: list[pl.DataFrame] = []
        self._rows = 0

    def push(self, frame: pl.DataFrame) -> Iterator[pl.DataFrame]:
        if frame.height == 0:
            return
        self._parts.append(frame)
        self._rows += frame.height
        if self._rows < self._chunk_rows:
            return
        merged = pl.concat(self._parts, how="diagonal_relaxed", rechunk=False)
        offset = 0
        while merged.height - offset >= self._chunk_rows:
            yield merged.slice(offset, self._chunk_rows).rechunk()
            offset += self._chunk_rows
        rest = merged.slice(offset)
        self._parts = [rest] if rest.height else []
        self._rows = rest.height

    def flush(self) -> Iterator[pl.DataFrame]:
        if self._rows:
            yield pl.concat(self._parts, how="diagonal_relaxed", rechunk=True)
        self._parts, self._rows = [], 0


def _log_failures(errors: dict[str, HQError]) -> None:
    for code, err in sorted(errors.items()):
        log.warning("failed to load %s: %s", code, err)


def log_without_bars(codes: Sequence[str], source: str) -> None:
    """One line for all the codes without bars (there may be thousands of them)."""
    if codes:
        shown = ", ".join(codes[:5]) + (", …" if len(codes) > 5 else "")
        log.info("%d code(s) without bars in %s (listed, no data): %s", len(codes), source, shown)


__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "BarQuery",
    "CodeLike",
    "DateLike",
    "LoadPlan",
    "LoadResult",
    "ReadMode",
    "StreamFold",
    "StreamPlan",
    "combine",
    "parse_code_list",
    "read_batch",
    "read_each",
]
