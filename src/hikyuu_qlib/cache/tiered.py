"""The tiered cache: memory (L1), Redis (L2, optional), disk (L3), behind the :class:`~hikyuu_qlib.ports.Cache`
port.

A request looks in the tiers its key allows, nearest first; a value found further away is copied into
the nearer tiers (L3 → L1 and L2 when it fits, L2 → L1). A miss computes the value once: the first
caller of the key in this process leads (threads and asyncio tasks join its flight); with Redis, the
leader also takes the key's cross-process lock, and processes that find it taken poll the shared tiers
for the value while the lock lives. A value found damaged is deleted and counts as a miss. Any tier
failure — Redis down, a full disk — is logged and skipped: the caller still gets its value.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hikyuu_qlib.cache import local_files
from hikyuu_qlib.cache.codec import encode
from hikyuu_qlib.cache.disk import DiskTier
from hikyuu_qlib.cache.envelope import CorruptValue, format_of, seal, unseal
from hikyuu_qlib.cache.locks import HeldLock, LeaderGone, LockState, RedisLocks, SingleFlight
from hikyuu_qlib.cache.memory import MemoryTier
from hikyuu_qlib.domain.cache import CacheCounters, CacheKey, Tier, TierUsage
from hikyuu_qlib.ports import ValueCodec, Versioned

if TYPE_CHECKING:  # redis is imported only by a cache that has a Redis tier
    from hikyuu_qlib.cache.redis_tier import RedisTier
    from hikyuu_qlib.observability.recording import Metrics
    from hikyuu_qlib.observability.tracing import Tracing

#: Tier counters and the result label of ``hq_cache_requests_total``.
_RESULTS: dict[str, Any] = {"hits": "hit", "misses": "miss", "corrupt": "stale", "errors": "error"}

log = logging.getLogger("hikyuu_qlib.cache")

T = TypeVar("T")


class _Miss:
    pass


MISS: Any = _Miss()
_FIRST_POLL = 0.002
_MAX_POLL = 0.05


class TieredCache:
    """The cache of one process over the tiers it is given (any of them may be None)."""

    def __init__(
        self,
        *,
        memory: MemoryTier | None,
        redis: RedisTier | None = None,
        disk: DiskTier | None = None,
        lock_ttl_ms: int = 10_000,
        lock_wait_s: float = 300.0,
        version_interval_s: float = 1.0,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """``metrics`` counts lookups by tier and result; with ``tracing`` on, each ``get``,
        ``get_or_compute`` and ``aget_or_compute`` is one span ``cache.<method>`` (attributes: the key's
        operation, whether a value was found or computed)."""
        if redis is not None and lock_ttl_ms / 1000 >= lock_wait_s:
            raise ValueError(
                f"the lock TTL ({lock_ttl_ms} ms) must be shorter than the wait ({lock_wait_s} s)"
            )
        self.memory = memory
        self.redis = redis
        self.disk = disk
        self.locks = RedisLocks(redis, lock_ttl_ms) if redis is not None else None
        self.lock_wait_s = lock_wait_s
        self.version_interval_s = version_interval_s
        self._flights = SingleFlight()
        self._count_lock = threading.Lock()
        self._counters = CacheCounters()
        self._flushed = CacheCounters()
        self._versions: dict[str, tuple[str, float]] = {}
        self._metrics = metrics if metrics is not None and metrics.enabled else None
        self._tracing = tracing if tracing is not None and tracing.enabled else None

    # --- counters ---------------------------------------------------------------------------------

    def _count(self, tier: Tier | None, what: str, n: int = 1) -> None:
        with self._count_lock:
            target: Any = self._counters if tier is None else self._counters.tiers[tier]
            setattr(target, what, getattr(target, what) + n)
        if self._metrics is not None and tier is not None and what in _RESULTS:
            self._metrics.record_cache(tier.value, _RESULTS[what])

    def counters(self) -> CacheCounters:
        """This process's counters since the cache was made."""
        with self._count_lock:
            return self._counters.copy()

    def stored_counters(self) -> CacheCounters:
        """The counters of every closed process over the disk tier's directory, plus this one's."""
        total = local_files.read_counters(self.disk.directory) if self.disk is not None else CacheCounters()
        total.add(self.counters().minus(self._flushed))
        return total

    def flush_counters(self) -> None:
        """Add this process's counters (since the last flush) to the disk tier's ``stats.json``."""
        if self.disk is None:
            return
        now = self.counters()
        delta = now.minus(self._flushed)
        if delta.to_json() != CacheCounters().to_json():
            local_files.add_counters(self.disk.directory, delta)
        self._flushed = now

    # --- tiers ------------------------------------------------------------------------------------

    def _uses(self, key: CacheKey, tier: Tier) -> bool:
        return (
            tier in key.tiers
            and {
                Tier.MEMORY: self.memory,
                Tier.REDIS: self.redis,
                Tier.DISK: self.disk,
            }[tier]
            is not None
        )

    def _decode_l2(self, key: CacheKey, data: bytes, codec: ValueCodec[T]) -> Any:
        try:
            payload = unseal(data, codec.name, codec.schema, format_of(codec.kind, on_disk=False))
            return codec.read(payload, Tier.REDIS)
        except ValueError as exc:
            log.warning("cache: damaged value %s in Redis (%s): deleting it", key.name, exc)
            self._count(Tier.REDIS, "corrupt")
            assert self.redis is not None
            self.redis.delete(key.name)
            return MISS

    def _from_l3(self, key: CacheKey, codec: ValueCodec[T]) -> Any:
        assert self.disk is not None
        try:
            value = self.disk.get(key.name, codec)
        except CorruptValue as exc:
            log.warning("cache: damaged value on disk (%s): deleted it", exc)
            self._count(Tier.DISK, "corrupt")
            return MISS
        except OSError as exc:
            log.warning("cache: could not read %s from disk: %s", key.name, exc)
            self._count(Tier.DISK, "errors")
            return MISS
        return MISS if value is None else value

    def _to_l1(self, key: CacheKey, value: Any, codec: ValueCodec[T]) -> None:
        if self.memory is not None and Tier.MEMORY in key.tiers:
            self.memory.put(key.name, value, codec.size(value))
            if self._metrics is not None:
                self._metrics.set_cache_bytes(Tier.MEMORY.value, self.memory.nbytes)

    def _l2_bytes(self, key: CacheKey, value: Any, codec: ValueCodec[T]) -> bytes | None:
        """The sealed Redis value, or None when it should not go to Redis (down, or too large)."""
        redis = self.redis
        if redis is None or not self._uses(key, Tier.REDIS) or not redis.outage.allowed():
            return None
        if codec.kind == "arrow" and codec.size(value) > 4 * redis.max_value_bytes:
            return None  # far above the cap even compressed: skip the encoding
        payload = encode(codec, value, Tier.REDIS)
        data = seal(codec.name, codec.schema, format_of(codec.kind, on_disk=False), payload)
        return data if redis.fits(data) else None

    def _lookup(self, key: CacheKey, codec: ValueCodec[T], *, quiet: bool = False) -> Any:
        """The value from the nearest tier, copied into the nearer ones; MISS when none holds it."""
        if self._uses(key, Tier.MEMORY):
            assert self.memory is not None
            found = self.memory.get(key.name)
            if found is not None:
                self._count(Tier.MEMORY, "hits")
                return found
            if not quiet:
                self._count(Tier.MEMORY, "misses")
        if not codec.storable:
            return MISS
        if self._uses(key, Tier.REDIS):
            assert self.redis is not None
            data = self.redis.get(key.name)
            value = MISS if data is None else self._decode_l2(key, data, codec)
            if value is not MISS:
                self._count(Tier.REDIS, "hits")
                self._to_l1(key, value, codec)
                return value
            if not quiet:
                self._count(Tier.REDIS, "misses")
        if self._uses(key, Tier.DISK):
            value = self._from_l3(key, codec)
            if value is not MISS:
                self._count(Tier.DISK, "hits")
                self._to_l1(key, value, codec)
                self._put_l2(key, value, codec)
                return value
            if not quiet:
                self._count(Tier.DISK, "misses")
        return MISS

    def _put_l2(self, key: CacheKey, value: Any, codec: ValueCodec[T]) -> None:
        data = self._l2_bytes(key, value, codec)
        if data is not None and self.redis is not None and self.redis.put(key.name, data):
            self._count(Tier.REDIS, "writes")

    def _put_l3(self, key: CacheKey, value: Any, codec: ValueCodec[T]) -> None:
        if not self._uses(key, Tier.DISK):
            return
        assert self.disk is not None
        try:
            self.disk.put(key.name, value, codec)
            self._count(Tier.DISK, "writes")
        except OSError as exc:
            log.warning("cache: could not write %s to disk: %s", key.name, exc)
            self._count(Tier.DISK, "errors")

    def _store(self, key: CacheKey, value: Any, codec: ValueCodec[T]) -> None:
        self._to_l1(key, value, codec)
        if codec.storable:
            self._put_l2(key, value, codec)
            self._put_l3(key, value, codec)

    # --- the port: plain reads and writes ---------------------------------------------------------

    def get(self, key: CacheKey, codec: ValueCodec[T]) -> T | None:
        if self._tracing is not None:
            with self._tracing.span("cache.get", {"hq.cache.op": key.op}) as span:
                found = self._get(key, codec)
                span.set_attribute("hq.cache.found", found is not None)
                return found
        return self._get(key, codec)

    def _get(self, key: CacheKey, codec: ValueCodec[T]) -> T | None:
        self._count(None, "requests")
        value = self._lookup(key, codec)
        return None if value is MISS else value

    def put(self, key: CacheKey, value: T, codec: ValueCodec[T]) -> None:
        self._store(key, value, codec)

    def delete(self, key: CacheKey) -> None:
        if self.memory is not None:
            self.memory.delete(key.name)
        if self.redis is not None:
            self.redis.delete(key.name)
        if self.disk is not None:
            self.disk.delete(key.name)

    # --- the port: one computation per key (threads) ----------------------------------------------

    def get_or_compute(
        self,
        key: CacheKey,
        compute: Callable[[], T],
        codec: ValueCodec[T],
        *,
        keep: Callable[[T], bool] | None = None,
    ) -> T:
        if self._tracing is None:
            return self._get_or_compute(key, compute, codec, keep=keep)
        computed = False

        def counted() -> T:
            nonlocal computed
            computed = True
            return compute()

        with self._tracing.span("cache.get_or_compute", {"hq.cache.op": key.op}) as span:
            value = self._get_or_compute(key, counted, codec, keep=keep)
            span.set_attribute("hq.cache.computed", computed)
            return value

    def _get_or_compute(
        self,
        key: CacheKey,
        compute: Callable[[], T],
        codec: ValueCodec[T],
        *,
        keep: Callable[[T], bool] | None = None,
    ) -> T:
        self._count(None, "requests")
        value = self._lookup(key, codec)
        if value is not MISS:
            return value  # type: ignore[no-any-return]
        while True:
            flight, leader = self._flights.join(key.name)
            if not leader:
                try:
                    value = flight.result()
                except LeaderGone:
                    continue
                self._count(None, "shared")
                return value  # type: ignore[no-any-return]
            try:
                value = self._lead(key, compute, codec, keep)
            except BaseException as error:
                self._flights.finish(key.name, flight, error=error)
                raise
            self._flights.finish(key.name, flight, value)
            return value

    def _cross_process(self, key: CacheKey, codec: ValueCodec[T]) -> bool:
        return (
            self.locks is not None
            and codec.storable
            and (self._uses(key, Tier.REDIS) or self._uses(key, Tier.DISK))
        )

    def _lead(
        self, key: CacheKey, compute: Callable[[], T], codec: ValueCodec[T], keep: Callable[[T], bool] | None
    ) -> T:
        deadline = time.monotonic() + self.lock_wait_s
        held: HeldLock | LockState = LockState.UNAVAILABLE
        while self._cross_process(key, codec):
            assert self.locks is not None
            held = self.locks.acquire(key.name)
            if held is not LockState.BUSY:
                break
            value = self._wait(key, codec, deadline)
            if value is not MISS:
                self._count(None, "shared")
                return value  # type: ignore[no-any-return]
            if time.monotonic() >= deadline:
                log.warning(
                    "cache: waited %.0f s for %s computed elsewhere: computing it here",
                    self.lock_wait_s,
                    key.name,
                )
                held = LockState.UNAVAILABLE
                break
        try:
            if isinstance(held, HeldLock):  # the previous holder may have stored it just before releasing
                value = self._lookup(key, codec, quiet=True)
                if value is not MISS:
                    return value  # type: ignore[no-any-return]
            value = compute()
            self._count(None, "computed")
            if keep is None or keep(value):
                self._store(key, value, codec)
            return value
        finally:
            if isinstance(held, HeldLock):
                assert self.locks is not None
                self.locks.release(held)

    def _wait(self, key: CacheKey, codec: ValueCodec[T], deadline: float) -> Any:
        """The value another process is computing, polled while its lock lives; MISS when the lock is
        gone without a value, Redis went down, or the deadline passed."""
        assert self.locks is not None
        pause = _FIRST_POLL
        while time.monotonic() < deadline:
            value = self._lookup(key, codec, quiet=True)
            if value is not MISS:
                return value
            if not self.locks.exists(key.name):
                return self._lookup(key, codec, quiet=True)  # released just now, or gone
            time.sleep(pause)
            pause = min(pause * 1.5, _MAX_POLL)
        return MISS

    # --- the port: one computation per key (asyncio tasks) ----------------------------------------

    async def _alookup(self, key: CacheKey, codec: ValueCodec[T], *, quiet: bool = False) -> Any:
        if self._uses(key, Tier.MEMORY):
            assert self.memory is not None
            found = self.memory.get(key.name)
            if found is not None:
                self._count(Tier.MEMORY, "hits")
                return found
            if not quiet:
                self._count(Tier.MEMORY, "misses")
        if not codec.storable:
            return MISS
        if self._uses(key, Tier.REDIS):
            assert self.redis is not None
            data = await self.redis.aget(key.name)
            value = MISS if data is None else await asyncio.to_thread(self._decode_l2, key, data, codec)
            if value is not MISS:
                self._count(Tier.REDIS, "hits")
                self._to_l1(key, value, codec)
                return value
            if not quiet:
                self._count(Tier.REDIS, "misses")
        if self._uses(key, Tier.DISK):
            value = await asyncio.to_thread(self._from_l3, key, codec)
            if value is not MISS:
                self._count(Tier.DISK, "hits")
                self._to_l1(key, value, codec)
                await self._aput_l2(key, value, codec)
                return value
            if not quiet:
                self._count(Tier.DISK, "misses")
        return MISS

    async def _aput_l2(self, key: CacheKey, value: Any, codec: ValueCodec[T]) -> None:
        data = await asyncio.to_thread(self._l2_bytes, key, value, codec)
        if data is not None and self.redis is not None and await self.redis.aput(key.name, data):
            self._count(Tier.REDIS, "writes")

    async def _astore(self, key: CacheKey, value: Any, codec: ValueCodec[T]) -> None:
        self._to_l1(key, value, codec)
        if codec.storable:
            await self._aput_l2(key, value, codec)
            await asyncio.to_thread(self._put_l3, key, value, codec)

    async def aget_or_compute(
        self,
        key: CacheKey,
        compute: Callable[[], Awaitable[T]],
        codec: ValueCodec[T],
        *,
        keep: Callable[[T], bool] | None = None,
    ) -> T:
        if self._tracing is None:
            return await self._aget_or_compute(key, compute, codec, keep=keep)
        computed = False

        async def counted() -> T:
            nonlocal computed
            computed = True
            return await compute()

        with self._tracing.span("cache.get_or_compute", {"hq.cache.op": key.op}) as span:
            value = await self._aget_or_compute(key, counted, codec, keep=keep)
            span.set_attribute("hq.cache.computed", computed)
            return value

    async def _aget_or_compute(
        self,
        key: CacheKey,
        compute: Callable[[], Awaitable[T]],
        codec: ValueCodec[T],
        *,
        keep: Callable[[T], bool] | None = None,
    ) -> T:
        self._count(None, "requests")
        value = await self._alookup(key, codec)
        if value is not MISS:
            return value  # type: ignore[no-any-return]
        while True:
            flight, leader = self._flights.join(key.name)
            if not leader:
                try:
                    value = await SingleFlight.wait(flight)
                except LeaderGone:
                    continue
                self._count(None, "shared")
                return value  # type: ignore[no-any-return]
            try:
                value = await self._alead(key, compute, codec, keep)
            except BaseException as error:
                self._flights.finish(key.name, flight, error=error)
                raise
            self._flights.finish(key.name, flight, value)
            return value  # type: ignore[no-any-return]

    async def _alead(
        self,
        key: CacheKey,
        compute: Callable[[], Awaitable[T]],
        codec: ValueCodec[T],
        keep: Callable[[T], bool] | None,
    ) -> T:
        deadline = time.monotonic() + self.lock_wait_s
        held: HeldLock | LockState = LockState.UNAVAILABLE
        while self._cross_process(key, codec):
            assert self.locks is not None
            held = await self.locks.aacquire(key.name)
            if held is not LockState.BUSY:
                break
            value = await self._await(key, codec, deadline)
            if value is not MISS:
                self._count(None, "shared")
                return value  # type: ignore[no-any-return]
            if time.monotonic() >= deadline:
                log.warning(
                    "cache: waited %.0f s for %s computed elsewhere: computing it here",
                    self.lock_wait_s,
                    key.name,
                )
                held = LockState.UNAVAILABLE
                break
        try:
            if isinstance(held, HeldLock):
                value = await self._alookup(key, codec, quiet=True)
                if value is not MISS:
                    return value  # type: ignore[no-any-return]
            value = await compute()
            self._count(None, "computed")
            if keep is None or keep(value):
                await self._astore(key, value, codec)
            return value
        finally:
            if isinstance(held, HeldLock):
                assert self.locks is not None
                await self.locks.arelease(held)

    async def _await(self, key: CacheKey, codec: ValueCodec[T], deadline: float) -> Any:
        assert self.locks is not None
        pause = _FIRST_POLL
        while time.monotonic() < deadline:
            value = await self._alookup(key, codec, quiet=True)
            if value is not MISS:
                return value
            if not await self.locks.aexists(key.name):
                return await self._alookup(key, codec, quiet=True)
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, _MAX_POLL)
        return MISS

    # --- data versions and generations ------------------------------------------------------------

    def data_version(self, source: Versioned) -> str:
        """``source.data_version()``, asked at most once per ``version_interval_s`` per source."""
        name = source.source
        now = time.monotonic()
        found = self._versions.get(name)
        if found is not None and now - found[1] < self.version_interval_s:
            return found[0]
        version = source.data_version()
        self._versions[name] = (version, now)
        return version

    def fresh_version(self, source: Versioned) -> str | None:
        found = self._versions.get(source.source)
        if found is not None and time.monotonic() - found[1] < self.version_interval_s:
            return found[0]
        return None

    def generation(self, scope: str) -> str | None:
        """The scope's token: Redis's when the cache has Redis (None while it is down), else this
        host's (in the disk tier's directory); None without either."""
        if self.redis is not None:
            return self.redis.generation(scope)
        if self.disk is not None:
            return local_files.file_generation(self.disk.directory, scope)
        return None

    async def ageneration(self, scope: str) -> str | None:
        if self.redis is not None:
            return await self.redis.ageneration(scope)
        return self.generation(scope)

    def bump(self, scope: str) -> None:
        """A new token for ``scope``, in Redis and on this host."""
        if self.redis is not None:
            self.redis.bump(scope)
        if self.disk is not None:
            local_files.bump_file_generation(self.disk.directory, scope)

    async def abump(self, scope: str) -> None:
        if self.redis is not None:
            await self.redis.abump(scope)
        if self.disk is not None:
            local_files.bump_file_generation(self.disk.directory, scope)

    # --- management -------------------------------------------------------------------------------

    def usage(self) -> list[TierUsage]:
        return [
            self.memory.usage() if self.memory is not None else TierUsage(Tier.MEMORY, False, detail="off"),
            self.redis.usage()
            if self.redis is not None
            else TierUsage(Tier.REDIS, False, detail="no cache_url"),
            self.disk.usage() if self.disk is not None else TierUsage(Tier.DISK, False, detail="off"),
        ]

    def clear(self, tiers: Collection[Tier] | None = None) -> dict[Tier, int]:
        wanted = set(tiers) if tiers else set(Tier)
        out: dict[Tier, int] = {}
        if Tier.MEMORY in wanted and self.memory is not None:
            out[Tier.MEMORY] = self.memory.clear()
        if Tier.REDIS in wanted and self.redis is not None:
            cleared = self.redis.clear()
            if cleared is not None:
                out[Tier.REDIS] = cleared
        if Tier.DISK in wanted and self.disk is not None:
            out[Tier.DISK] = self.disk.clear()
        if wanted == set(Tier) and self.disk is not None:
            local_files.reset_counters(self.disk.directory)
            self._flushed = self.counters()
        return out

    def close(self) -> None:
        """Record this process's counters and close the Redis clients (the cache can be used after)."""
        self.flush_counters()
        if self.redis is not None:
            self.redis.close()

    @property
    def directory(self) -> Path | None:
        return None if self.disk is None else self.disk.directory
