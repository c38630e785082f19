"""A feature cache on disk: one checked file per entry, keyed by a digest of everything the features
depend on.

An entry is ``<dir>/<key>.arrow``: a 24-byte header, then the frame as an Arrow IPC file (lz4). The
header holds a magic string with the format version, the payload's length and its CRC-32. A read
checks all three before the payload is parsed, so a truncated, extended or altered file is a miss:
it is deleted and the features are computed again, never served. Entries are written to a temporary
file and renamed into place, so a reader never sees half an entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

from hikyuu_qlib.checksum import crc32

log = logging.getLogger(__name__)

MAGIC = b"HQFEAT01"
_HEADER = struct.Struct("<8sQI4x")  # magic, payload length, crc32 of the payload, padding
_BLOCK = 1 << 22


def cache_key(parts: Mapping[str, str]) -> str:
    """A stable digest of named parts (source identity, data version, universe, factor set, dates…)."""
    text = json.dumps(dict(sorted(parts.items())), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def write_entry(path: Path, frame: pl.DataFrame) -> None:
    """Write ``frame`` as a cache entry at ``path`` (in place: callers rename it into place)."""
    with path.open("w+b") as f:
        f.write(bytes(_HEADER.size))
        frame.write_ipc(f, compression="lz4")
        length = f.tell() - _HEADER.size
        f.seek(_HEADER.size)
        checksum = 0
        while block := f.read(_BLOCK):
            checksum = crc32(block, checksum)
        f.seek(0)
        f.write(_HEADER.pack(MAGIC, length, checksum))


def read_entry(path: Path) -> pl.DataFrame:
    """The frame of the entry at ``path``; ``ValueError`` naming the mismatch when it is not intact."""
    data = path.read_bytes()
    if len(data) < _HEADER.size:
        raise ValueError(f"{len(data)} bytes, shorter than the {_HEADER.size}-byte header")
    magic, length, checksum = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"header {magic!r} is not {MAGIC!r} (another format or version)")
    payload = memoryview(data)[_HEADER.size :]
    if len(payload) != length:
        raise ValueError(f"payload is {len(payload)} bytes, the header says {length}")
    if crc32(payload) != checksum:
        raise ValueError("payload checksum does not match the header")
    import pyarrow as pa  # loaded on first hit only: it costs a small load more than the read
    import pyarrow.ipc as pa_ipc

    try:
        table = pa_ipc.open_file(pa.py_buffer(payload)).read_all()  # reads the bytes in place
    except pa.ArrowException as exc:
        raise ValueError(f"not an Arrow IPC file: {exc}") from None
    return pl.DataFrame(pl.from_arrow(table))


class FeatureCache:
    """Frames stored as checked ``<dir>/<key>.arrow`` entries; a missing or damaged entry is recomputed."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory).expanduser()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.arrow"

    def get(self, key: str) -> pl.DataFrame | None:
        """The frame stored under ``key``; None when there is none, or when the entry is damaged (it is
        then deleted)."""
        path = self.path(key)
        try:
            return read_entry(path)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, pl.exceptions.PolarsError) as exc:
            log.warning("feature cache entry %s is damaged (%s): deleting it and computing anew", path, exc)
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, frame: pl.DataFrame) -> Path:
        """Write atomically (temporary file, then rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            write_entry(tmp, frame)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
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
