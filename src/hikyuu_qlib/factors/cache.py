"""A feature cache on disk: Arrow IPC files keyed by a digest of everything the features depend on."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

log = logging.getLogger(__name__)


def cache_key(parts: Mapping[str, str]) -> str:
    """A stable digest of named parts (source identity, data version, universe, factor set, dates…)."""
    text = json.dumps(dict(sorted(parts.items())), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class FeatureCache:
    """Frames stored as ``<dir>/<key>.arrow``; a missing or unreadable entry is recomputed."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory).expanduser()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.arrow"

    def get(self, key: str) -> pl.DataFrame | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return pl.read_ipc(path)
        except (OSError, pl.exceptions.ComputeError) as exc:
            log.warning("ignoring unreadable feature cache entry %s: %s", path, exc)
            return None

    def put(self, key: str, frame: pl.DataFrame) -> Path:
        """Write atomically (temporary file, then rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        frame.write_ipc(tmp, compression="lz4")
        tmp.replace(path)
        return path

    def get_or_compute(self, parts: Mapping[str, str], compute: Callable[[], pl.DataFrame]) -> pl.DataFrame:
        """The cached frame for ``parts``, or ``compute()`` stored under their key."""
        key = cache_key(parts)
        cached = self.get(key)
        if cached is not None:
            log.info("feature cache hit %s", key)
            return cached
        frame = compute()
        self.put(key, frame)
        log.info("feature cache stored %s (%d rows)", key, frame.height)
        return frame
