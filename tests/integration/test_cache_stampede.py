"""One computation per key: 100 concurrent identical requests from threads, asyncio tasks and 4 processes
sharing Redis run the source computation exactly once (counted in Redis)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.cache_support import drop_prefix, unique_prefix

REPO = Path(__file__).resolve().parents[2]
PROCESSES = 4
THREADS = 13
TASKS = 12  # 4 × (13 + 12) = 100 requests

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, threading, time
    import polars as pl
    import redis
    from hikyuu_qlib.cache.codec import FRAME
    from hikyuu_qlib.cache.memory import MemoryTier
    from hikyuu_qlib.cache.redis_tier import RedisTier
    from hikyuu_qlib.cache.tiered import TieredCache
    from hikyuu_qlib.domain.cache import CacheKey

    url, prefix, start, threads, tasks = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    counter = redis.Redis.from_url(url)
    tier = RedisTier(url, prefix=prefix, ttl_ms=60_000, max_value_bytes=1 << 24)
    cache = TieredCache(memory=MemoryTier(1 << 26), redis=tier, lock_ttl_ms=2_000, lock_wait_s=30)
    key = CacheKey.of("stampede", source="test", data_version="1", schema=1, params={"n": 1})

    def compute():
        counter.incr(prefix + "computations")
        counter.pexpire(prefix + "computations", 60_000)
        time.sleep(0.5)  # a slow source: everyone else arrives while it runs
        return pl.DataFrame({"x": list(range(1000))})

    async def acompute():
        return await asyncio.to_thread(compute)

    results, errors = [], []

    def thread():
        try:
            results.append(cache.get_or_compute(key, compute, FRAME).height)
        except BaseException as exc:
            errors.append(repr(exc))

    async def many_tasks():
        async def one():
            return (await cache.aget_or_compute(key, acompute, FRAME)).height
        return await asyncio.gather(*(one() for _ in range(tasks)), return_exceptions=True)

    time.sleep(max(0.0, start - time.time()))
    workers = [threading.Thread(target=thread) for _ in range(threads)]
    for w in workers:
        w.start()
    for out in asyncio.run(many_tasks()):
        (errors if isinstance(out, BaseException) else results).append(out if not isinstance(out, BaseException) else repr(out))
    for w in workers:
        w.join()
    counted = cache.counters()
    print(json.dumps({"results": results, "errors": errors, "computed": counted.computed, "shared": counted.shared}))
    """
)


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = unique_prefix("stampede")
    yield name
    drop_prefix(redis_url, name)


def test_100_concurrent_requests_compute_once(redis_url: str, prefix: str, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    start = time.time() + 3.0  # every process imported and waiting when the clock strikes
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), redis_url, prefix, str(start), str(THREADS), str(TASKS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert all(not o["errors"] for o in outputs), [o["errors"] for o in outputs]
    results = [r for o in outputs for r in o["results"]]
    assert len(results) == 100 and set(results) == {1000}
    client = redis.Redis.from_url(redis_url)
    assert int(client.get(prefix + "computations") or 0) == 1  # exactly one source computation
    assert sum(o["computed"] for o in outputs) == 1
    assert not list(client.scan_iter(match=f"{prefix}lock:*"))  # released
    client.close()


def test_a_crashed_holder_blocks_the_others_only_for_its_lock_ttl(redis_url: str, prefix: str) -> None:
    import polars as pl

    from hikyuu_qlib.cache.codec import FRAME
    from hikyuu_qlib.cache.memory import MemoryTier
    from hikyuu_qlib.cache.redis_tier import RedisTier
    from hikyuu_qlib.cache.tiered import TieredCache
    from hikyuu_qlib.domain.cache import CacheKey

    tier = RedisTier(redis_url, prefix=prefix, ttl_ms=60_000, max_value_bytes=1 << 20)
    cache = TieredCache(memory=MemoryTier(1 << 20), redis=tier, lock_ttl_ms=800, lock_wait_s=30)
    key = CacheKey.of("crashed", source="t", data_version="1", schema=1)
    client = redis.Redis.from_url(redis_url)
    client.set(f"{prefix}lock:{key.name}", "a-holder-that-died", px=800)  # never released, never renewed
    started = time.perf_counter()
    frame = cache.get_or_compute(key, lambda: pl.DataFrame({"x": [1]}), FRAME)
    waited = time.perf_counter() - started
    assert frame["x"].to_list() == [1] and cache.counters().computed == 1
    assert 0.5 < waited < 5.0  # waited for the dead lock to expire, not for the 30 s wait
    client.close()


def test_the_lock_ttl_must_be_shorter_than_the_wait() -> None:
    from pydantic import ValidationError

    from hikyuu_qlib.settings import Settings

    with pytest.raises(ValidationError, match="must be shorter than cache_lock_wait_s"):
        Settings(cache_lock_ttl_ms=60_000, cache_lock_wait_s=30)
    with pytest.raises(ValidationError, match="redis://"):
        Settings(cache_url="http://127.0.0.1:6379")
    assert Settings(cache_url="none").cache_url is None
