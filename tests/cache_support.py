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
