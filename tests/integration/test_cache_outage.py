"""Redis down is not an error: a private redis-server is stopped and restarted in the middle of a
workload; no request fails, one warning is logged per outage, and the hit ratio recovers."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import redis
from tests.conftest import require

from hikyuu_qlib.cache.codec import FRAME
from hikyuu_qlib.cache.redis_tier import RedisTier
from hikyuu_qlib.cache.tiered import TieredCache
from hikyuu_qlib.domain.cache import CacheKey, Tier

KEYS = [CacheKey.of("outage", source="t", data_version="1", schema=1, params={"i": i}) for i in range(5)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    private = PrivateRedis(_free_port(), tmp_path)
    private.start()
    yield private
    private.stop()


def _frame(key: CacheKey) -> pl.DataFrame:
    return pl.DataFrame({"key": [key.digest] * 100, "x": list(range(100))})


def _round(cache: TieredCache) -> None:
    for key in KEYS:
        assert cache.get_or_compute(key, lambda k=key: _frame(k), FRAME).equals(_frame(key))  # type: ignore[misc]

    async def tasks() -> None:
        async def compute(k: CacheKey) -> pl.DataFrame:
            return _frame(k)

        for key in KEYS:
            got = await cache.aget_or_compute(key, lambda k=key: compute(k), FRAME)  # type: ignore[misc]
            assert got.equals(_frame(key))

    asyncio.run(tasks())


def _ratio(cache: TieredCache, rounds: int) -> float:
    before = cache.counters()
    for _ in range(rounds):
        _round(cache)
    delta = cache.counters().minus(before)
    assert delta.requests == rounds * 2 * len(KEYS)
    return delta.tiers[Tier.REDIS].hits / delta.requests


def test_an_outage_fails_no_request_and_the_hit_ratio_recovers(
    server: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    tier = RedisTier(
        f"redis://127.0.0.1:{server.port}/0",
        prefix="hqtest:outage:",
        ttl_ms=60_000,
        max_value_bytes=1 << 20,
        timeout_s=0.2,
        max_backoff_s=0.2,
    )
    cache = TieredCache(memory=None, redis=tier, lock_ttl_ms=1_000, lock_wait_s=10)  # every hit is Redis's
    caplog.set_level(logging.WARNING, logger="hikyuu_qlib.cache")
    _round(cache)  # fills Redis
    assert _ratio(cache, 3) == 1.0
    server.stop()
    started = time.perf_counter()
    assert _ratio(cache, 10) == 0.0  # every request answered from the source
    assert time.perf_counter() - started < 5.0  # no connection timeout per request: the outage is skipped
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # one warning per outage
    server.start()
    time.sleep(0.3)  # past the backoff: the next call reconnects
    assert _ratio(cache, 10) >= 0.85  # the first round refills Redis; the rest hit
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    server.stop()
    _round(cache)
    server.start()
    time.sleep(0.3)
    _round(cache)
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 2  # a second outage
    assert tier.outage.outages == 2
    cache.close()
