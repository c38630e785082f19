"""L2: values in Redis (redis-py's sync and asyncio clients), shared by every process using the cache.

Every key starts with the tier's prefix and carries a TTL. Values above the size cap are not stored.
Every call goes through :class:`~.outage.Outage`: while Redis is unreachable the tier answers "miss" /
"not stored" without waiting, and it comes back by itself. Besides values the tier holds the
cross-process locks (:mod:`.locks`) and the generation tokens that invalidate cached model records.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio as aredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hikyuu_qlib.cache.outage import Outage
from hikyuu_qlib.domain.cache import Tier, TierUsage
from hikyuu_qlib.observability.redact import mask_url

log = logging.getLogger(__name__)

T = TypeVar("T")
#: What a failing Redis call raises: connection, timeout, a server that is loading or read-only …
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)


class RedisTier:
    """Values, locks and generation tokens under ``prefix`` in the Redis at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        ttl_ms: int,
        max_value_bytes: int,
        timeout_s: float = 0.5,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.ttl_ms = ttl_ms
        self.max_value_bytes = max_value_bytes
        self.timeout_s = timeout_s
        self.outage = Outage(mask_url(url), max_backoff=max_backoff_s)
        self._client: redis.Redis | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    # --- clients ----------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.timeout_s,
            "socket_connect_timeout": self.timeout_s,
            "retry": Retry(NoBackoff(), 0),
            "client_name": "hikyuu-qlib-cache",
            "socket_read_size": 1 << 20,  # values of megabytes: fewer reads
        }

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, **self._options())
        return self._client

    @property
    def aclient(self) -> aredis.Redis:
        """The asyncio client of the running event loop (redis-py's async connections belong to one)."""
        loop = asyncio.get_running_loop()
        found = self._aclients.get(loop)
        if found is None:
            found = aredis.Redis.from_url(self.url, **self._options())
            self._aclients[loop] = found
        return found

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def call(self, fn: Callable[[redis.Redis], T], default: T) -> T:
        """``fn(client)``, or ``default`` while Redis is down (a failure opens or extends the outage)."""
        if not self.outage.allowed():
            return default
        try:
            result = fn(self.client)
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return default
        self.outage.succeeded()
        return result

    async def acall(self, fn: Callable[[aredis.Redis], Awaitable[T]], default: T) -> T:
        if not self.outage.allowed():
            return default
        try:
            result = await fn(self.aclient)
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return default
        self.outage.succeeded()
        return result

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        self._aclients.clear()  # their connections close with their loops

    # --- values -----------------------------------------------------------------------------------

    def get(self, name: str) -> bytes | None:
        key = self.key(name)
        return self.call(lambda r: r.get(key), None)  # type: ignore[return-value]

    async def aget(self, name: str) -> bytes | None:
        key = self.key(name)
        return await self.acall(lambda r: r.get(key), None)  # type: ignore[arg-type,return-value]

    def fits(self, data: bytes) -> bool:
        return len(data) <= self.max_value_bytes

    def put(self, name: str, data: bytes) -> bool:
        if not self.fits(data):
            return False
        key = self.key(name)
        return self.call(lambda r: bool(r.set(key, data, px=self.ttl_ms)), False)

    async def aput(self, name: str, data: bytes) -> bool:
        if not self.fits(data):
            return False
        key = self.key(name)
        return bool(await self.acall(lambda r: r.set(key, data, px=self.ttl_ms), False))

    def delete(self, name: str) -> bool:
        key = self.key(name)
        return bool(self.call(lambda r: r.unlink(key), 0))

    # --- generations (invalidation across processes) ------------------------------------------------

    def generation(self, scope: str) -> str | None:
        """The token of ``scope`` (a fresh one is set when there is none); None while Redis is down."""
        key = self.key(f"gen:{scope}")

        def read(r: redis.Redis) -> str:
            token = r.get(key)
            if token is None:
                r.set(key, uuid.uuid4().hex, nx=True, px=self.ttl_ms)
                token = r.get(key)
            return "" if token is None else token.decode() if isinstance(token, bytes) else str(token)

        token = self.call(read, "")
        return token or None

    async def ageneration(self, scope: str) -> str | None:
        key = self.key(f"gen:{scope}")

        async def read(r: aredis.Redis) -> str:
            token = await r.get(key)
            if token is None:
                await r.set(key, uuid.uuid4().hex, nx=True, px=self.ttl_ms)
                token = await r.get(key)
            return "" if token is None else token.decode() if isinstance(token, bytes) else str(token)

        token = await self.acall(read, "")
        return token or None

    async def abump(self, scope: str) -> bool:
        key = self.key(f"gen:{scope}")
        return bool(await self.acall(lambda r: r.set(key, uuid.uuid4().hex, px=self.ttl_ms), False))

    def bump(self, scope: str) -> bool:
        """Give ``scope`` a new token (never one it had before); False when Redis is down."""
        key = self.key(f"gen:{scope}")
        return self.call(lambda r: bool(r.set(key, uuid.uuid4().hex, px=self.ttl_ms)), False)

    # --- management -------------------------------------------------------------------------------

    def _scan(self, r: redis.Redis) -> list[bytes]:
        return list(r.scan_iter(match=f"{self.prefix}*", count=1000))

    def clear(self) -> int | None:
        """Delete every key under the prefix (values, locks, generations); None while Redis is down."""

        def run(r: redis.Redis) -> int:
            keys = self._scan(r)
            for i in range(0, len(keys), 1000):
                r.unlink(*keys[i : i + 1000])
            return len(keys)

        return self.call(run, None)

    def usage(self) -> TierUsage:
        def run(r: redis.Redis) -> tuple[int, int]:
            keys = self._scan(r)
            total = 0
            for i in range(0, len(keys), 1000):
                pipe = r.pipeline(transaction=False)
                for key in keys[i : i + 1000]:
                    pipe.strlen(key)
                total += sum(int(n) for n in pipe.execute())
            return len(keys), total

        found = self.call(run, None)
        where = f"{mask_url(self.url)} prefix {self.prefix!r}"
        if found is None:
            return TierUsage(Tier.REDIS, False, detail=f"unreachable: {where}")
        return TierUsage(Tier.REDIS, True, found[0], found[1], None, where)

    def ttls(self) -> dict[str, int]:
        """Every key under the prefix and its TTL in ms (-1: none) — what the tests check."""

        def run(r: redis.Redis) -> dict[str, int]:
            return {bytes(k).decode(): int(r.pttl(k)) for k in self._scan(r)}

        return self.call(run, {})
