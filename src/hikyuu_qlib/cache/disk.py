"""L3: values as files on local disk, memory-mapped on read, bounded in bytes.

A value is ``<dir>/<op>/<digest>.hqc``: the 32-byte header of :mod:`.envelope`, then the payload (a frame
as an Arrow IPC file, uncompressed, so that a read maps the file and the frame uses its buffers in
place; a record as JSON). A read checks the header and the checksum first; a damaged or foreign file is
deleted and reported as a miss. Files are written under a temporary name and renamed into place, so a
reader never sees half a value. A hit refreshes the file's modification time; when the directory holds
more than its bound, the least recently used files go first.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from hikyuu_qlib.cache.envelope import HEADER, CorruptValue, format_of, seal_file, unseal
from hikyuu_qlib.domain.cache import Tier, TierUsage

log = logging.getLogger(__name__)

SUFFIX = ".hqc"


class DiskTier:
    """Checked value files under ``directory``, at most ``max_bytes`` in all."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = Path(directory).expanduser()
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        op, digest = name.split(":", 1)
        return self.directory / op / f"{digest}{SUFFIX}"

    def get(self, name: str, codec: Any) -> Any | None:
        """The value stored under ``name``; None when there is none. Raises :class:`CorruptValue` after
        deleting a damaged file."""
        path = self.path(name)
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                data: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except FileNotFoundError:
            return None
        try:
            payload = unseal(memoryview(data), codec.name, codec.schema, format_of(codec.kind, on_disk=True))
            value = codec.read(payload, Tier.DISK)
        except ValueError as exc:
            path.unlink(missing_ok=True)
            raise CorruptValue(f"{path}: {exc}") from None
        with contextlib.suppress(OSError):
            os.utime(path)
        return value

    def put(self, name: str, value: Any, codec: Any) -> int:
        """Write ``value`` (atomically); returns its size in bytes."""
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w+b") as out:
                out.write(bytes(HEADER.size))
                codec.write(value, out, Tier.DISK)
                seal_file(out, 0, codec.name, codec.schema, format_of(codec.kind, on_disk=True))
                size = out.tell()
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.evict()
        return size

    def delete(self, name: str) -> bool:
        try:
            self.path(name).unlink()
            return True
        except FileNotFoundError:
            return False

    def _files(self) -> list[tuple[float, int, Path]]:
        out: list[tuple[float, int, Path]] = []
        if not self.directory.is_dir():
            return out
        for sub in self.directory.iterdir():
            if not sub.is_dir():
                continue
            for path in sub.glob(f"*{SUFFIX}"):
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                out.append((st.st_mtime, st.st_size, path))
        return out

    def evict(self) -> int:
        """Delete the least recently used files until the directory is within its bound."""
        with self._lock:
            files = self._files()
            total = sum(size for _, size, _ in files)
            removed = 0
            for _, size, path in sorted(files, key=lambda item: item[0]):
                if total <= self.max_bytes:
                    break
                path.unlink(missing_ok=True)
                total -= size
                removed += 1
            if removed:
                log.info("disk cache: evicted %d file(s) to stay within %d bytes", removed, self.max_bytes)
            return removed

    def clear(self) -> int:
        files = self._files()
        for _, _, path in files:
            path.unlink(missing_ok=True)
        for sub in {path.parent for _, _, path in files}:
            for stale in sub.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                sub.rmdir()  # only when empty
        return len(files)

    def usage(self) -> TierUsage:
        files = self._files()
        return TierUsage(
            Tier.DISK,
            True,
            len(files),
            sum(size for _, size, _ in files),
            self.max_bytes,
            str(self.directory),
        )
