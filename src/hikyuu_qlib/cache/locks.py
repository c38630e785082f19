"""One computation per key: in process (threads and asyncio tasks), and across processes (Redis).

:class:`SingleFlight` lets the first caller of a key compute while later callers of this process —
threads or tasks — wait on its result. :class:`RedisLocks` extends that to other processes: ``SET key
token NX PX ttl`` takes the lock, a keeper thread renews it (compare-and-expire) while the holder
computes, and a compare-and-delete script releases it, so a holder only ever deletes its own lock. A
holder that crashes stops renewing: its lock expires after ``ttl``, which is shorter than a waiter's
timeout, so the waiters take over instead of waiting for it forever.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # redis is imported only by a cache that has a Redis tier
    from hikyuu_qlib.cache.redis_tier import RedisTier

#: Deletes the lock only if it still holds the caller's token.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
#: Extends the lock only if it still holds the caller's token.
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class LeaderGone(Exception):
    """The caller computing a key was interrupted (cancelled, Ctrl-C): its waiters try again."""


class SingleFlight:
    """Concurrent callers of one key in this process share one computation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, Future[Any]] = {}

    def join(self, name: str) -> tuple[Future[Any], bool]:
        """The flight of ``name`` and whether the caller leads it (and must :meth:`finish` it)."""
        with self._lock:
            found = self._flights.get(name)
            if found is not None:
                return found, False
            future: Future[Any] = Future()
            future.set_running_or_notify_cancel()  # a waiter can no longer cancel it for the others
            self._flights[name] = future
            return future, True

    def finish(
        self, name: str, future: Future[Any], value: Any = None, error: BaseException | None = None
    ) -> None:
        with self._lock:
            if self._flights.get(name) is future:
                del self._flights[name]
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error if isinstance(error, Exception) else LeaderGone(str(error)))

    @staticmethod
    async def wait(future: Future[Any]) -> Any:
        """The flight's result, awaited by a task (its own cancellation does not cancel the flight)."""
        return await asyncio.shield(asyncio.wrap_future(future))

    def __len__(self) -> int:
        return len(self._flights)


class LockState(Enum):
    BUSY = "busy"  # another process holds it
    UNAVAILABLE = "unavailable"  # Redis is down: compute without it


@dataclass
class HeldLock:
    """A lock this process holds, and the thread that renews it."""

    name: str
    token: str
    stop: threading.Event
    keeper: threading.Thread | None = None


class RedisLocks:
    """Cross-process locks in a :class:`RedisTier`, with a TTL of ``ttl_ms`` renewed while held."""

    def __init__(self, tier: RedisTier, ttl_ms: int) -> None:
        self.tier = tier
        self.ttl_ms = ttl_ms

    def key(self, name: str) -> str:
        return self.tier.key(f"lock:{name}")

    def _held(self, name: str, token: str) -> HeldLock:
        held = HeldLock(name, token, threading.Event())
        keeper = threading.Thread(target=self._renew, args=(held,), name="hq-cache-lock", daemon=True)
        held.keeper = keeper
        keeper.start()
        return held

    def acquire(self, name: str) -> HeldLock | LockState:
        token = uuid.uuid4().hex
        key = self.key(name)
        got = self.tier.call(lambda r: r.set(key, token, nx=True, px=self.ttl_ms), None)
        if got is None and self.tier.outage.down:
            return LockState.UNAVAILABLE
        return self._held(name, token) if got else LockState.BUSY

    async def aacquire(self, name: str) -> HeldLock | LockState:
        token = uuid.uuid4().hex
        key = self.key(name)
        got = await self.tier.acall(lambda r: r.set(key, token, nx=True, px=self.ttl_ms), None)
        if got is None and self.tier.outage.down:
            return LockState.UNAVAILABLE
        return self._held(name, token) if got else LockState.BUSY

    def _renew(self, held: HeldLock) -> None:
        key = self.key(held.name)
        every = max(self.ttl_ms / 3000, 0.01)
        while not held.stop.wait(every):
            self.tier.call(lambda r: r.eval(RENEW, 1, key, held.token, self.ttl_ms), 0)

    def release(self, held: HeldLock) -> None:
        """Stop renewing and delete the lock if it is still ours (compare-and-delete)."""
        held.stop.set()
        key = self.key(held.name)
        self.tier.call(lambda r: r.eval(RELEASE, 1, key, held.token), 0)

    async def arelease(self, held: HeldLock) -> None:
        held.stop.set()
        key = self.key(held.name)
        await self.tier.acall(lambda r: r.eval(RELEASE, 1, key, held.token), 0)

    def exists(self, name: str) -> bool | None:
        """Whether someone holds ``name`` (None when Redis is down)."""
        key = self.key(name)
        found = self.tier.call(lambda r: r.exists(key), None)
        return None if found is None else bool(found)

    async def aexists(self, name: str) -> bool | None:
        key = self.key(name)
        found = await self.tier.acall(lambda r: r.exists(key), None)
        return None if found is None else bool(found)
