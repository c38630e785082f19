"""CRC-32 of cache files, with ISA-L's implementation when it is installed (several times zlib's speed)."""

from __future__ import annotations

import zlib

try:
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _crc32 = zlib.crc32


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """The CRC-32 of ``data`` (continuing from ``value``), as zlib defines it."""
    return int(_crc32(data, value))
