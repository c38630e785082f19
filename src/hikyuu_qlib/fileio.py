"""Positioned reads on a file descriptor, on every platform.

``os.pread`` reads at an offset without moving the descriptor's position and waits for the disk with
the GIL released; it does not exist on Windows. There, :func:`read_at` seeks and reads, which is as
good for a descriptor one thread owns (every caller here opens its own with :func:`open_to_read`).
"""

from __future__ import annotations

import os
from pathlib import Path

_pread = getattr(os, "pread", None)
#: Windows opens descriptors in text mode unless told otherwise
_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def open_to_read(path: str | Path) -> int:
    """A raw, binary, read-only descriptor of ``path`` (the caller closes it)."""
    return os.open(path, _FLAGS)


def read_at(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes of ``fd`` from ``offset`` (fewer only at the end of the file)."""
    if _pread is not None:
        data: bytes = _pread(fd, size, offset)
        return data
    os.lseek(fd, offset, os.SEEK_SET)
    parts: list[bytes] = []
    while size > 0:  # a read may return less than asked before the end of the file
        part = os.read(fd, size)
        if not part:
            break
        parts.append(part)
        size -= len(part)
    return b"".join(parts)
