"""Bar response bodies: built in a worker process, kept whole in the cache tier.

A ``GET /v1/bars`` answer is its whole body in the format asked (Arrow IPC, Parquet, CSV or JSON):

- **Built off the server process.** The store read, the adjustment and the serialisation run in a
  process of the server's body pool (``api_body_processes``, spawned on first use, at a lower CPU
  priority, dying with the server). They hold none of the server's GIL, so the requests its event loop
  answers meanwhile (a model read, a job poll) never wait behind a cold read of a whole store. With
  ``api_body_processes = 0`` the body is built on the server's own threads instead.
- **Kept whole.** A complete body (no code failed) is kept in the server's memory tier (L1) under
  the query's cache key (source, data version, codes, dates, period, adjustment) and the format: a
  repeated request costs a dictionary lookup and the write to the socket. A new data version of the
  store is a new key, so a body is never served for data it was not built from.

A body is sent in parts of :data:`PART_BYTES` with its ``Content-Length``; the meta that travels beside
the rows (per-code ``errors``, ``without_bars``, ``source``) is inside it (see :mod:`.formats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.responses import StreamingResponse

from hikyuu_qlib.cache.codec import MemoryOnly
from hikyuu_qlib.cache.keys import MEMORY_ONLY
from hikyuu_qlib.domain.cache import CacheKey
from hikyuu_qlib.domain.errors import HQError
from hikyuu_qlib.service.formats import MediaType, body_media_type, encode_frame, header_meta

if TYPE_CHECKING:
    from hikyuu_qlib.cache.tiered import TieredCache
    from hikyuu_qlib.loadplan import LoadResult
    from hikyuu_qlib.marketdata import AsyncMarketDataClient, MarketDataClient
    from hikyuu_qlib.settings import Settings

log = logging.getLogger(__name__)

#: Bump when a body's layout changes: bodies kept under the old layout are then never served.
BODY_SCHEMA = 1
#: Bytes of each part a body is sent in.
PART_BYTES = 1 << 20
#: Body processes yield the CPU to the server's request handling (and take it from jobs, at 10).
NICENESS = 5


@dataclass(frozen=True)
class BarsAsk:
    """A bars request as a body process takes it (plain, picklable values)."""

    codes: tuple[str, ...]
    start: dt.datetime | None
    end: dt.datetime | None
    ktype: str
    adjust: str
    media: str
    compression: str | None = None


@dataclass(frozen=True)
class Body:
    """A whole response body, its meta, and whether every code loaded (only then is it kept)."""

    data: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    complete: bool = True


BODY: MemoryOnly[Body] = MemoryOnly("bars-body", lambda body: len(body.data) + 1024)


def bars_meta(result: LoadResult, source: str) -> dict[str, Any]:
    from hikyuu_qlib.service.problems import error_doc

    return {
        "rows": result.frame.height,
        "errors": error_doc(dict(result.errors)),
        "without_bars": list(result.without_bars),
        "source": source,
    }


def body_of(result: LoadResult, source: str, media: MediaType, compression: str | None = None) -> Body:
    meta = bars_meta(result, source)
    data = encode_frame(result.frame, media, key="bars", meta=meta, compression=compression)
    return Body(data, meta, complete=not result.errors)


def body_response(body: Body, media: MediaType) -> StreamingResponse:
    """The body sent in parts of :data:`PART_BYTES` (the loop serves other requests between parts)."""
    data = memoryview(body.data)

    async def parts() -> AsyncIterator[bytes]:
        for i in range(0, len(data), PART_BYTES):
            yield data[i : i + PART_BYTES]  # type: ignore[misc]

    headers = {"Content-Length": str(len(data))}
    if media is not MediaType.JSON:
        headers["HQ-Meta"] = header_meta(body.meta)
    return StreamingResponse(parts(), media_type=body_media_type(media), headers=headers)


# --- the body processes ------------------------------------------------------------------------------

#: The market data client of a body process (set by its initializer; one per process).
_WORKER: dict[str, MarketDataClient] = {}


def _start_worker(settings_doc: dict[str, Any]) -> None:
    """Initializer of a body process: die with the server, yield the CPU to it, open the store."""
    from hikyuu_qlib.app import open_cache, open_market
    from hikyuu_qlib.observability.logs import configure_logging
    from hikyuu_qlib.service.lifecycle import die_with_parent, lower_priority
    from hikyuu_qlib.settings import Settings

    die_with_parent(signal.SIGKILL)
    lower_priority(os.getpid(), NICENESS)
    settings = Settings(**settings_doc)
    configure_logging(settings.log_level)
    _WORKER["market"] = open_market(settings=settings, cache=open_cache(settings))


@dataclass(frozen=True, slots=True)
class Failed:
    """An expected error of a body process, as data (its kind and message) rather than an object."""

    kind: str
    message: str

    @classmethod
    def of(cls, exc: HQError) -> Failed:
        return cls(type(exc).__name__, str(exc))

    def error(self) -> HQError:
        """The error again, as the nearest kind of :class:`HQError` that takes a message."""
        kinds = [HQError]
        while kinds:
            kind = kinds.pop()
            if kind.__name__ == self.kind:
                with contextlib.suppress(Exception):
                    return kind(self.message)
                break
            kinds.extend(kind.__subclasses__())
        return HQError(self.message)


def build_in_worker(ask: BarsAsk) -> Body | Failed:
    """Read and serialise one bars request in a body process (an expected error is returned)."""
    md = _WORKER["market"]
    try:
        result = md.load_many(
            list(ask.codes), start=ask.start, end=ask.end, ktype=ask.ktype, adjust=ask.adjust
        )
        return body_of(result, md.store.source, MediaType(ask.media), ask.compression)
    except HQError as exc:
        return Failed.of(exc)


class BarBodies:
    """The bars bodies of one server process: its body pool and the bodies kept in its cache."""

    def __init__(
        self,
        settings: Settings,
        *,
        cache: TieredCache,
        market: AsyncMarketDataClient,
        threads: Executor,
    ) -> None:
        self._settings_doc = settings.model_dump(mode="json")
        self._processes = settings.api_body_processes
        self._cache = cache
        self._market = market
        self._threads = threads
        self._pool: ProcessPoolExecutor | None = None
        self._lowered: set[int] = set()
        self._lock = threading.Lock()

    async def body(
        self,
        codes: list[str],
        *,
        start: dt.datetime | None,
        end: dt.datetime | None,
        ktype: str,
        adjust: str,
        media: MediaType,
        compression: str | None = None,
    ) -> Body:
        ask = BarsAsk(tuple(codes), start, end, ktype, adjust, media.value, compression)
        query = await self._market.bars_key(codes, start=start, end=end, ktype=ktype, adjust=adjust)
        if query is None:
            return await self._build(ask)
        key = CacheKey.of(
            "bars-body",
            source=query.source,
            data_version=query.data_version,
            schema=BODY_SCHEMA,
            params={"query": query.name, "media": media.value, "compression": compression},
            tiers=MEMORY_ONLY,
        )
        return await self._cache.aget_or_compute(
            key, lambda: self._build(ask), BODY, keep=lambda body: body.complete
        )

    async def _build(self, ask: BarsAsk) -> Body:
        if self._processes <= 0:
            return await self._build_here(ask)
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self._open()
            try:
                pending = loop.run_in_executor(pool, build_in_worker, ask)
                self._lower(pool)
                outcome = await pending
            except BrokenProcessPool:
                self._discard(pool)
                if attempt == 2:
                    raise
                log.warning("a bars body process died: starting another")
                continue
            if isinstance(outcome, Failed):
                raise outcome.error()
            return outcome
        raise AssertionError("unreachable")

    async def _build_here(self, ask: BarsAsk) -> Body:
        result = await self._market.load_many(
            list(ask.codes), start=ask.start, end=ask.end, ktype=ask.ktype, adjust=ask.adjust
        )
        source = self._market.store.source
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._threads, lambda: body_of(result, source, MediaType(ask.media), ask.compression)
        )

    def _open(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self._processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(self._settings_doc,),
                )
            return self._pool

    def _lower(self, pool: ProcessPoolExecutor) -> None:
        """Lower the priority of the pool's new processes from their start (their imports included)."""
        from hikyuu_qlib.service.lifecycle import lower_priority

        for pid in list(getattr(pool, "_processes", None) or ()):
            if pid not in self._lowered:
                self._lowered.add(pid)
                lower_priority(pid, NICENESS)

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
