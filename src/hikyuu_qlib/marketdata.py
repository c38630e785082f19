"""The market data API: a real sync client and a real async client over one MarketData store.

Both return one columnar frame per query (see :mod:`hikyuu_qlib.domain.schema`).

- :class:`MarketData` reads are blocking file I/O. The sync client calls them directly (or on a bounded
  thread pool for ``load_many``); the async client always runs them on its own bounded executor, so the
  event loop never blocks on a read, and bounds how many run at once with a semaphore.
- Both clients share one plan (:mod:`hikyuu_qlib.loadplan`, as httpx's ``Client`` and ``AsyncClient``
  share ``BaseClient``): query parsing, the read mode (one batch pass for a store that reads many codes
  at once, else code by code, serially or ``concurrency`` at a time), the batch-to-per-code fallback,
  folding outcomes into :class:`LoadResult`, and chunking. A client only runs the plan's reads.
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

Caching. With a :class:`~hikyuu_qlib.ports.Cache`, ``load_many``/``bars`` and ``stocks`` are cached under
keys of the store's source, its data version (asked again at most once per the cache's version
interval), the codes as a set, the period, adjustment and dates: a data update is a new key. Only
results without errors are kept (codes without bars are part of the result). Concurrent identical
queries — threads, tasks, processes sharing Redis — read the store once. ``stream`` is not cached.

``stocks(has_data=True)`` lists only the codes with bars (the ``has_data`` column of the stocks frame).
A code the store does not know at all is an :class:`UnknownCodeError`, reported in ``errors`` (and
raised by ``stream``).

Given active telemetry (:func:`hikyuu_qlib.app.open_market` passes the entrypoint's), each ``load_many``
(and so ``bars``) is one recorded load (:mod:`hikyuu_qlib.observability.loads`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Self, TypeVar

import polars as pl

from hikyuu_qlib.cache.codec import FRAME
from hikyuu_qlib.cache.keys import bars_key, stocks_key
from hikyuu_qlib.cache.values import LOAD_RESULT
from hikyuu_qlib.domain import (
    Adjust,
    DateRange,
    HQError,
    InvalidInputError,
    KType,
    Market,
    StockCode,
    StockType,
)
from hikyuu_qlib.domain.cache import CacheKey
from hikyuu_qlib.loadplan import (
    DEFAULT_CHUNK_ROWS,
    BarQuery,
    CodeLike,
    DateLike,
    LoadPlan,
    LoadResult,
    Outcome,
    ReadMode,
    StreamPlan,
    combine,
    parse_code_list,
    read_outcome,
)
from hikyuu_qlib.observability.loads import LoadObserver
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.ports import Cache, MarketData

T = TypeVar("T")


def _result_outcome(result: LoadResult) -> tuple[int, dict[str, HQError]]:
    return result.frame.height, result.errors


def _ok(result: LoadResult) -> bool:
    return result.ok


class _BaseClient:
    """What the sync and async clients share: the store, the executor size, and the plans of their calls."""

    def __init__(
        self,
        store: MarketData,
        *,
        max_workers: int = 4,
        telemetry: Telemetry | None = None,
        cache: Cache | None = None,
    ) -> None:
        if max_workers < 1:
            raise InvalidInputError(f"max_workers must be >= 1, got {max_workers}")
        self._store = store
        self._max_workers = max_workers
        self._cache = cache
        # records each load; None when nothing is recorded
        self._loads = (
            LoadObserver(telemetry, store.source) if telemetry is not None and telemetry.active else None
        )

    @property
    def store(self) -> MarketData:
        return self._store

    @property
    def cache(self) -> Cache | None:
        return self._cache

    def _cacheable(self, plan: LoadPlan) -> bool:
        """Whether a plan's result may be cached (not when some codes did not parse)."""
        return self._cache is not None and not plan.unparsed and bool(plan.codes)

    def _bars_key(self, plan: LoadPlan, version: str) -> CacheKey:
        q = plan.query
        return bars_key(self._store.source, version, [str(c) for c in plan.codes], q.ktype, q.adjust, q.dates)

    def _stocks_key(
        self, market: Market | None, types: Sequence[StockType] | None, valid: bool | None, version: str
    ) -> CacheKey:
        return stocks_key(self._store.source, version, market, types, valid)

    def _load_plan(
        self,
        codes: CodeLike | Iterable[CodeLike],
        start: DateLike,
        end: DateLike,
        ktype: KType | str,
        adjust: Adjust | str,
        concurrency: int,
    ) -> LoadPlan:
        return LoadPlan.of(self._store, codes, BarQuery.of(start, end, ktype, adjust), concurrency)

    def _stream_plan(
        self,
        codes: CodeLike | Iterable[CodeLike],
        start: DateLike,
        end: DateLike,
        ktype: KType | str,
        adjust: Adjust | str,
        chunk_rows: int,
        concurrency: int,
    ) -> StreamPlan:
        query = BarQuery.of(start, end, ktype, adjust)
        return StreamPlan.of(self._store, codes, query, chunk_rows, concurrency)

    def _read_stocks(
        self, market: Market | None, types: Sequence[StockType] | None, valid: bool | None
    ) -> pl.DataFrame:
        return self._store.stocks(market=market, types=types, valid=valid)


def _filter_has_data(frame: pl.DataFrame, has_data: bool | None) -> pl.DataFrame:
    return frame if has_data is None else frame.filter(pl.col("has_data") == has_data)


class MarketDataClient(_BaseClient):
    """Blocking API over a store. ``with MarketDataClient(store) as md: md.bars(...)``."""

    def __init__(
        self,
        store: MarketData,
        *,
        max_workers: int = 4,
        telemetry: Telemetry | None = None,
        cache: Cache | None = None,
    ) -> None:
        super().__init__(store, max_workers=max_workers, telemetry=telemetry, cache=cache)
        self._pool: ThreadPoolExecutor | None = None

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
        cache = self._cache
        if cache is None:
            return _filter_has_data(self._read_stocks(market, types, valid), has_data)
        key = self._stocks_key(market, types, valid, cache.data_version(self._store))
        frame = cache.get_or_compute(key, lambda: self._read_stocks(market, types, valid), FRAME)
        return _filter_has_data(frame, has_data)

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
        """Load codes; failures are reported per code, codes the store lists without bars in
        ``without_bars``. A store that reads many codes at once gets them in one pass (it uses its own
        threads); others are read ``concurrency`` at a time on threads."""
        plan = self._load_plan(codes, start, end, ktype, adjust, concurrency)
        cache = self._cache
        if cache is None or not self._cacheable(plan):
            return self._load(plan)
        key = self._bars_key(plan, cache.data_version(self._store))
        return cache.get_or_compute(key, lambda: self._load(plan), LOAD_RESULT, keep=_ok)

    def _load(self, plan: LoadPlan) -> LoadResult:
        """Read the plan from the store (recorded by the telemetry when it is on)."""
        if self._loads is None:
            return self._run_plan(plan)
        return self._loads.call(
            plan.query.ktype.value, len(plan.codes), lambda: self._run_plan(plan), _result_outcome
        )

    def _run_plan(self, plan: LoadPlan) -> LoadResult:
        if plan.mode is ReadMode.BATCH:
            return plan.read_batch(self._store)
        if plan.mode is ReadMode.SERIAL:
            return plan.fold((code, read_outcome(self._store, code, plan.query)) for code in plan.codes)
        return plan.fold(self._map_bounded(plan.codes, plan.query, plan.concurrency))

    def _map_bounded(
        self, codes: Sequence[StockCode], query: BarQuery, concurrency: int
    ) -> Iterator[tuple[StockCode, Outcome]]:
        """Read codes with at most ``concurrency`` in flight, yielding in input order."""
        pool = self._executor()
        pending: list[tuple[StockCode, Future[Outcome]]] = []
        for code in codes:
            pending.append((code, pool.submit(read_outcome, self._store, code, query)))
            if len(pending) >= concurrency:
                done, future = pending.pop(0)
                yield done, future.result()
        while pending:
            done, future = pending.pop(0)
            yield done, future.result()

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
        plan = self._stream_plan(codes, start, end, ktype, adjust, chunk_rows, concurrency)
        fold = plan.fold()
        for code, outcome in self._map_bounded(plan.codes, plan.query, plan.concurrency):
            yield from fold.push(code, outcome)
        yield from fold.finish()


class AsyncMarketDataClient(_BaseClient):
    """Async API: every blocking read runs on a bounded executor, never on the event loop.

    ``async with AsyncMarketDataClient(store) as md: result = await md.load_many(codes, concurrency=8)``
    """

    def __init__(
        self,
        store: MarketData,
        *,
        max_workers: int = 4,
        telemetry: Telemetry | None = None,
        cache: Cache | None = None,
    ) -> None:
        super().__init__(store, max_workers=max_workers, telemetry=telemetry, cache=cache)
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="hq-aio")

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

    async def _run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the client's executor."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def stocks(
        self,
        *,
        market: Market | None = None,
        types: Sequence[StockType] | None = None,
        valid: bool | None = True,
        has_data: bool | None = None,
    ) -> pl.DataFrame:
        """See :meth:`MarketDataClient.stocks`."""
        cache = self._cache
        if cache is None:
            frame = await self._run(lambda: self._read_stocks(market, types, valid))
        else:
            key = self._stocks_key(market, types, valid, await self._version(cache))
            frame = await cache.aget_or_compute(
                key, lambda: self._run(lambda: self._read_stocks(market, types, valid)), FRAME
            )
        return _filter_has_data(frame, has_data)

    async def calendar(
        self, *, ktype: KType = KType.DAY, start: DateLike = None, end: DateLike = None
    ) -> pl.Series:
        dates = DateRange.of(start, end)
        return await self._run(lambda: self._store.calendar(ktype=ktype, dates=dates))

    async def members(self, universe: str, *, start: DateLike = None, end: DateLike = None) -> pl.DataFrame:
        dates = DateRange.of(start, end)
        return await self._run(lambda: self._store.members(universe, dates))

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
        """See :meth:`MarketDataClient.load_many`; code-by-code reads have at most ``concurrency`` in
        flight (default: the executor size)."""
        plan = self._load_plan(codes, start, end, ktype, adjust, concurrency or self._max_workers)
        cache = self._cache
        if cache is None or not self._cacheable(plan):
            return await self._load(plan)
        key = self._bars_key(plan, await self._version(cache))
        return await cache.aget_or_compute(key, lambda: self._load(plan), LOAD_RESULT, keep=_ok)

    async def bars_key(
        self,
        codes: CodeLike | Iterable[CodeLike],
        *,
        start: DateLike = None,
        end: DateLike = None,
        ktype: KType | str = KType.DAY,
        adjust: Adjust | str = Adjust.NONE,
    ) -> CacheKey | None:
        """The cache key of a bar query at the store's current data version, what a value derived from
        its result (a response body) is kept under; None without a cache or when a code does not parse."""
        plan = self._load_plan(codes, start, end, ktype, adjust, 1)
        cache = self._cache
        if cache is None or not self._cacheable(plan):
            return None
        return self._bars_key(plan, await self._version(cache))

    async def _version(self, cache: Cache) -> str:
        """The store's data version: the cache's fresh one, else asked on the executor (a Qlib store
        stats every file)."""
        fresh = cache.fresh_version(self._store)
        return fresh if fresh is not None else await self._run(lambda: cache.data_version(self._store))

    async def _load(self, plan: LoadPlan) -> LoadResult:
        if self._loads is None:
            return await self._run_plan(plan)
        return await self._loads.acall(
            plan.query.ktype.value, len(plan.codes), lambda: self._run_plan(plan), _result_outcome
        )

    async def _run_plan(self, plan: LoadPlan) -> LoadResult:
        if plan.mode is ReadMode.BATCH:
            return await self._run(lambda: plan.read_batch(self._store))
        limit = asyncio.Semaphore(plan.concurrency)

        async def one(code: StockCode) -> Outcome:
            async with limit:
                return await self._run(lambda: read_outcome(self._store, code, plan.query))

        outcomes = await asyncio.gather(*(one(code) for code in plan.codes))
        return await self._run(lambda: plan.fold(zip(plan.codes, outcomes, strict=True)))

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
        plan = self._stream_plan(codes, start, end, ktype, adjust, chunk_rows, concurrency)
        fold = plan.fold()
        loop = asyncio.get_running_loop()
        pending: list[tuple[StockCode, asyncio.Future[Outcome]]] = []
        todo = iter(plan.codes)
        try:
            while True:
                while len(pending) < plan.concurrency and (code := next(todo, None)) is not None:
                    pending.append(
                        (code, loop.run_in_executor(self._pool, read_outcome, self._store, code, plan.query))
                    )
                if not pending:
                    break
                code, future = pending.pop(0)
                for chunk in fold.push(code, await future):
                    yield chunk
            for chunk in fold.finish():
                yield chunk
        finally:
            for _, future in pending:
                future.cancel()


__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "AsyncMarketDataClient",
    "BarQuery",
    "LoadResult",
    "MarketDataClient",
    "combine",
    "parse_code_list",
]
