"""Caches for tests: a disk-only cache (so that every hit reads the Arrow file), and its entries."""

from __future__ import annotations

from pathlib import Path

from hikyuu_qlib.cache.disk import DiskTier
from hikyuu_qlib.cache.tiered import TieredCache


def disk_cache(path: Path, max_bytes: int = 1 << 34) -> TieredCache:
    """A cache with only the disk tier, under ``path``."""
    return TieredCache(memory=None, disk=DiskTier(path, max_bytes))


def entries(path: Path) -> list[Path]:
    """The value files of a disk tier."""
    return sorted(path.glob("*/*.hqc"))


def settings_env(home: Path, redis_url: str | None, prefix: str) -> dict[str, str]:
    """``HQ_*`` variables of a cache over ``home`` (and Redis under ``prefix`` when given)."""
    env = {"HQ_HOME": str(home), "HQ_CACHE_KEY_PREFIX": prefix}
    if redis_url is not None:
        env["HQ_CACHE_URL"] = redis_url
    return env


def unique_prefix(name: str) -> str:
    """A Redis key prefix no other test uses."""
    import uuid

    return f"hqtest:{name}:{uuid.uuid4().hex[:10]}:"


def drop_prefix(redis_url: str, prefix: str) -> None:
    """Delete every key under ``prefix``."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
