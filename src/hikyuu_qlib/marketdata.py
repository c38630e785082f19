"""The market data API: a real sync client and a real async client over one MarketData store.

Both return one columnar frame per query (see :mod:`hikyuu_qlib.domain.schema`).

- :class:`MarketData` reads are blocking file I/O. The sync client calls them directly (or on a bounded
  thread pool for ``load_many``); the async client always runs them on its own bounded executor, so the
  event loop never blocks on a read, and bounds how many run at once with a semaphore.
- ``load_many`` never turns a failing code into empty data: it returns the frame of the codes that loaded
  and a per-code error report (:class:`LoadResult`). ``bars`` raises :class:`LoadErrors` instead.
- ``stream`` yields frames of at most ``chunk_rows`` rows while holding at most ``concurrency`` codes
  in memory beyond the current chunk.

Codes without bars. A store may list codes it holds no bars for (a Hikyuu ``stock.db`` lists the whole
exchange while the HDF5 files hold a few tables; a Qlib universe lists delisted members without a
``features`` folder). Such a code is not a failure: the store raises :class:`NoBarsError` for it, and

- ``load_many`` puts it in :attr:`LoadResult.without_bars` (sorted codes), never in ``errors``, and logs
  one line with their count;
- ``bars`` returns the bars of the others (it raises :class:`LoadErrors` only for real errors);
- ``stream`` skips it and logs one line with the count of skipped codes when the stream ends.

``stocks(has_data=True)`` lists only the codes with bars (the ``has_data`` column of the stocks frame).
A code the store does not know at all is an :class:`UnknownCodeError`, reported in ``errors`` (and
raised by ``stream``) as before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import polars as pl

from hikyuu_qlib.domain import (
    Adjust,
    DateRange,
    HQError,
    InvalidInputError,
    KType,
    LoadErrors,
    Market,
    NoBarsError,
    StockCode,
    StockType,
)
from hikyuu_qlib.domain.schema import empty_bars
from hikyuu_qlib.ports import BatchBarReader, MarketData

log = logging.getLogger(__name__)

DateLike = str | dt.date | dt.datetime | int | None
CodeLike = str | StockCode
DEFAULT_CHUNK_ROWS = 250_000


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
        _log_without_bars(without, source)
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
    """Concatenate per-code frames (already sorted by datetime) in code order."""
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_bars()
    frames = sorted(frames, key=lambda f: f["code"][0])
    return pl.concat(frames, how="diagonal_relaxed", rechunk=True)


def _read_one(store: MarketData, code: StockCode, query: BarQuery) -> pl.DataFrame:
    return store.read_bars(code, ktype=query.ktype, adjust=query.adjust, dates=query.dates)


def _read_batch(
    store: BatchBarReader, codes: Sequence[StockCode], query: BarQuery
) -> tuple[pl.DataFrame, dict[str, HQError]]:
    return store.read_many(codes, ktype=query.ktype, adjust=query.adjust, dates=query.dates)


# A batch read of fewer codes than this is not split: its work is mostly GIL-bound (numpy, polars frame
# assembly), so splitting a small load across threads only adds contention (100 Qlib codes: 26 ms as
# one batch, 33 ms as two, 52 ms as eight on two cores).
BATCH_MIN_CODES = 128


def _filter_has_data(frame: pl.DataFrame, has_data: bool | None) -> pl.DataFrame:
    return frame if has_data is None else frame.filter(pl.col("has_data") == has_data)


def _chunks(codes: Sequence[StockCode], parts: int) -> list[list[StockCode]]:
    """``codes`` in at most ``parts`` contiguous, nearly equal runs of at least ``BATCH_MIN_CODES``."""
    parts = max(1, min(parts, -(-len(codes) // BATCH_MIN_CODES)))
    size, extra = divmod(len(codes), parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        out.append(list(codes[start:stop]))
        start = stop
    return [c for c in out if c]


class MarketDataClient:
    """Blocking API over a store. ``with MarketDataClient(store) as md: md.bars(...)``."""

    def __init__(self, store: MarketData, *, max_workers: int = 4) -> None:
        if max_workers < 1:
            raise InvalidInputError(f"max_workers must be >= 1, got {max_workers}")
        self._store = store
        self._max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None

    @property
    def store(self) -> MarketData:
        return self._store

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._store.close()

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="hq-io")
        return self._pool

    def stocks(
        self,
        *,
        market: Market | None = None,
        types: Sequence[StockType] | None = None,
        valid: bool | None = True,
        has_data: bool | None = None,
    ) -> pl.DataFrame:
        """The stock list (``STOCK_SCHEMA``); ``has_data`` keeps only the codes with (True) or without
        (False) bars in the store."""
        return _filter_has_data(self._store.stocks(market=market, types=types, valid=valid), has_data)

    def calendar(
        self, *, ktype: KType = KType.DAY, start: DateLike = None, end: DateLike = None
    ) -> pl.Series:
        return self._store.calendar(ktype=ktype, dates=DateRange.of(start, end))

    def members(self, universe: str, *, start: DateLike = None, end: DateLike = None) -> pl.DataFrame:
        return self._store.members(universe, DateRange.of(start, end))

    def bars(
        self,
        codes: CodeLike | Iterable[CodeLike],
        *,
        start: DateLike = None,
        end: DateLike = None,
        ktype: KType | str = KType.DAY,
        adjust: Adjust | str = Adjust.NONE,
    ) -> pl.DataFrame:
        """Bars of every code in one frame; raises :class:`LoadErrors` if any code fails."""
        return self.load_many(codes, start=start, end=end, ktype=ktype, adjust=adjust).raise_for_errors()

    def load_many(
        self,
        codes: CodeLike | Iterable[CodeLike],
        *,
        start: DateLike = None,
        end: DateLike = None,
        ktype: KType | str = KType.DAY,
        adjust: Adjust | str = Adjust.NONE,
        concurrency: int = 1,
    ) -> LoadResult:
        """Load codes (``concurrency`` at a time on threads); failures are reported per code, codes the
        store lists without bars in ``without_bars``."""
        query = BarQuery.of(start, end, ktype, adjust)
        parsed, errors = parse_code_list(codes)
        frames: list[pl.DataFrame] = []
        if isinstance(self._store, BatchBarReader) and parsed:
            store = self._store
            runs = _chunks(sorted(parsed), concurrency)
            if len(runs) == 1:
                results = [_read_batch(store, runs[0], query)]
            else:
                results = list(self._executor().map(lambda run: _read_batch(store, run, query), runs))
            for frame, failed in results:
                frames.append(frame)
                errors.update(failed)
        elif concurrency <= 1 or len(parsed) == 1:
            for code in parsed:
                try:
                    frames.append(_read_one(self._store, code, query))
                except HQError as exc:
                    errors[str(code)] = exc
        else:
            for code, outcome in self._map_bounded(parsed, query, concurrency):
                if isinstance(outcome, HQError):
                    errors[str(code)] = outcome
                else:
                    frames.append(outcome)
        return LoadResult.of(combine(frames), errors, self._store.source)

    def _map_bounded(
        self, codes: Sequence[StockCode], query: BarQuery, concurrency: int
    ) -> Iterator[tuple[StockCode, pl.DataFrame | HQError]]:
        """Read codes with at most ``concurrency`` in flight, yielding in input order."""
        pool = self._executor()
        pending: list[tuple[StockCode, Future[pl.DataFrame]]] = []
        it = iter(codes)
        for code in it:
            pending.append((code, pool.submit(_read_one, self._store, code, query)))
            if len(pending) >= concurrency:
                yield _settle(*pending.pop(0))
        while pending:
            yield _settle(*pending.pop(0))

    def stream(
        self,
        codes: CodeLike | Iterable[CodeLike],
        *,
        start: DateLike = None,
        end: DateLike = None,
        ktype: KType | str = KType.DAY,
        adjust: Adjust | str = Adjust.NONE,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        concurrency: int = 2,
    ) -> Iterator[pl.DataFrame]:
        """Yield frames of ``chunk_rows`` rows (the last may be shorter) in code order.

        A code that fails raises :class:`LoadErrors` when it is reached; the chunks before it were yielded.
        A code without bars (:class:`NoBarsError`) is skipped; their count is logged when the stream ends.
        """
        _check_chunk_rows(chunk_rows)
        query = BarQuery.of(start, end, ktype, adjust)
        parsed, errors = parse_code_list(codes)
        if errors:
            raise LoadErrors(errors)
        buffer = _ChunkBuffer(chunk_rows)
        without: list[str] = []
        for code, outcome in self._map_bounded(parsed, query, max(1, concurrency)):
            if isinstance(outcome, NoBarsError):
                without.append(str(code))
                continue
            if isinstance(outcome, HQError):
                raise LoadErrors({str(code): outcome})
            yield from buffer.push(outcome)
        yield from buffer.flush()
        _log_without_bars(tuple(without), self._store.source)


class AsyncMarketDataClient:
    """Async API: every blocking read runs on a bounded executor, never on the event loop.

    ``async with AsyncMarketDataClient(store) as md: result = await md.load_many(codes, concurrency=8)``
    """

    def __init__(self, store: MarketData, *, max_workers: int = 4) -> None:
        if max_workers < 1:
            raise InvalidInputError(f"max_workers must be >= 1, got {max_workers}")
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="hq-aio")
        self._max_workers = max_workers

    @property
    def store(self) -> MarketData:
        return self._store

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._store.close()

    async def stocks(
        self,
        *,
        market: Market | None = None,
        types: Sequence[StockType] | None = None,
        valid: bool | None = True,
        has_data: bool | None = None,
    ) -> pl.DataFrame:
        """See :meth:`MarketDataClient.stocks`."""
        loop = asyncio.get_running_loop()
        frame = await loop.run_in_executor(
            self._pool, lambda: self._store.stocks(market=market, types=types, valid=valid)
        )
        return _filter_has_data(frame, has_data)

    async def calendar(
        self, *, ktype: KType = KType.DAY, start: DateLike = None, end: DateLike = None
    ) -> pl.Series:
        dates = DateRange.of(start, end)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self._store.calendar(ktype=ktype, dates=dates))

    async def members(self, universe: str, *, start: DateLike = None, end: DateLike = None) -> pl.DataFrame:
        dates = DateRange.of(start, end)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._store.members, universe, dates)

    async def bars(
        self,
        codes: CodeLike | Iterable[CodeLike],
        *,
        start: DateLike = None,
        end: DateLike = None,
        ktype: KType | str = KType.DAY,
        adjust: Adjust | str = Adjust.NONE,
        concurrency: int | None = None,
    ) -> pl.DataFrame:
        result = await self.load_many(
            codes, start=start, end=end, ktype=ktype, adjust=adjust, concurrency=concurrency
        )
        return result.raise_for_errors()

    async def load_many(
        self,
        codes: CodeLike | Iterable[CodeLike],
        *,
        start: DateLike = None,
        end: DateLike = None,
        ktype: KType | str = KType.DAY,
        adjust: Adjust | str = Adjust.NONE,
        concurrency: int | None = None,
    ) -> LoadResult:
        """Load codes concurrently (at most ``concurrency`` reads in flight; default: the executor size)."""
        query = BarQuery.of(start, end, ktype, adjust)
        parsed, errors = parse_code_list(codes)
        limit = asyncio.Semaphore(concurrency or self._max_workers)
        loop = asyncio.get_running_loop()
        if isinstance(self._store, BatchBarReader) and parsed:
            store = self._store

            async def run(codes: list[StockCode]) -> tuple[pl.DataFrame, dict[str, HQError]]:
                async with limit:
                    return await loop.run_in_executor(self._pool, _read_batch, store, codes, query)

            results = await asyncio.gather(
                *(run(c) for c in _chunks(sorted(parsed), concurrency or self._max_workers))
            )
            for _, failed in results:
                errors.update(failed)
            frame = await loop.run_in_executor(self._pool, combine, [f for f, _ in results])
            return LoadResult.of(frame, errors, self._store.source)

        async def one(code: StockCode) -> pl.DataFrame | HQError:
            async with limit:
                try:
                    return await loop.run_in_executor(self._pool, _read_one, self._store, code, query)
                except HQError as exc:
                    return exc

        outcomes = await asyncio.gather(*(one(code) for code in parsed))
        frames: list[pl.DataFrame] = []
        for code, outcome in zip(parsed, outcomes, strict=True):
            if isinstance(outcome, HQError):
                errors[str(code)] = outcome
            else:
                frames.append(outcome)
        frame = await loop.run_in_executor(self._pool, combine, frames)
        return LoadResult.of(frame, errors, self._store.source)

    async def stream(
        self,
        codes: CodeLike | Iterable[CodeLike],
        *,
        start: DateLike = None,
        end: DateLike = None,
        ktype: KType | str = KType.DAY,
        adjust: Adjust | str = Adjust.NONE,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        concurrency: int = 2,
    ) -> AsyncIterator[pl.DataFrame]:
        """Async version of :meth:`MarketDataClient.stream`, with ``concurrency`` reads prefetched."""
        _check_chunk_rows(chunk_rows)
        query = BarQuery.of(start, end, ktype, adjust)
        parsed, errors = parse_code_list(codes)
        if errors:
            raise LoadErrors(errors)
        loop = asyncio.get_running_loop()
        buffer = _ChunkBuffer(chunk_rows)
        without: list[str] = []
        pending: list[tuple[StockCode, asyncio.Future[pl.DataFrame]]] = []
        it = iter(parsed)
        try:
            while True:
                while len(pending) < max(1, concurrency):
                    code = next(it, None)
                    if code is None:
                        break
                    pending.append(
                        (code, loop.run_in_executor(self._pool, _read_one, self._store, code, query))
                    )
                if not pending:
                    break
                code, future = pending.pop(0)
                try:
                    frame = await future
                except NoBarsError:
                    without.append(str(code))
                    continue
                except HQError as exc:
                    raise LoadErrors({str(code): exc}) from exc
                for chunk in buffer.push(frame):
                    yield chunk
            for chunk in buffer.flush():
                yield chunk
            _log_without_bars(tuple(without), self._store.source)
        finally:
            for _, future in pending:
                future.cancel()


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


def _settle(code: StockCode, future: Future[pl.DataFrame]) -> tuple[StockCode, pl.DataFrame | HQError]:
    try:
        return code, future.result()
    except HQError as exc:
        return code, exc


def _check_chunk_rows(chunk_rows: int) -> None:
    if chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows must be >= 1, got {chunk_rows}")


def _log_failures(errors: dict[str, HQError]) -> None:
    for code, err in sorted(errors.items()):
        log.warning("failed to load %s: %s", code, err)


def _log_without_bars(codes: Sequence[str], source: str) -> None:
    """One line for all the codes without bars (there may be thousands of them)."""
    if codes:
        shown = ", ".join(codes[:5]) + (", …" if len(codes) > 5 else "")
        log.info("%d code(s) without bars in %s (listed, no data): %s", len(codes), source, shown)
