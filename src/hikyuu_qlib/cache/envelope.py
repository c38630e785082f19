"""The header every stored cache value carries (Redis and disk alike).

A value is a 32-byte header, then its payload. The header holds a magic string, the codec's name and
schema version, the payload's format, its length and its CRC-32. :func:`unseal` checks all of them
before a payload is parsed, so garbage bytes, a value of another codec or schema (an older release), a
truncated or altered value — or anything that is not ours, such as a pickle — is refused
(:class:`CorruptValue`): the tier deletes it and reports a miss.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import IO

from hikyuu_qlib.checksum import crc32

MAGIC = b"HQCV"
HEADER = struct.Struct("<4s8sHHQI4x")  # magic, codec name, schema, format, payload length, crc32
_BLOCK = 1 << 22


class Encoding(IntEnum):
    """How the payload is encoded."""

    ARROW_STREAM = 1
    ARROW_FILE = 2
    JSON = 3


def format_of(kind: str, on_disk: bool) -> Encoding:
    """The payload format of a codec's ``kind`` (``arrow`` or ``json``) in Redis or on disk."""
    if kind == "json":
        return Encoding.JSON
    if kind == "arrow":
        return Encoding.ARROW_FILE if on_disk else Encoding.ARROW_STREAM
    raise ValueError(f"{kind!r} values are not stored")


class CorruptValue(ValueError):
    """A stored value whose header or checksum does not match what the reader expects."""


def _name(codec_name: str) -> bytes:
    raw = codec_name.encode("ascii")
    if len(raw) > 8:
        raise ValueError(f"codec name {codec_name!r} is longer than 8 characters")
    return raw.ljust(8, b"\0")


def header(codec_name: str, schema: int, fmt: Encoding, payload: bytes | memoryview) -> bytes:
    """The header of ``payload``."""
    return HEADER.pack(MAGIC, _name(codec_name), schema, fmt, len(payload), crc32(payload))


def seal(codec_name: str, schema: int, fmt: Encoding, payload: bytes) -> bytes:
    """Header and payload, as one value."""
    return header(codec_name, schema, fmt, payload) + payload


def seal_file(out: IO[bytes], start: int, codec_name: str, schema: int, fmt: Encoding) -> None:
    """Fill in the header of a file whose payload was written after ``HEADER.size`` zero bytes at
    ``start`` (``out`` is open for reading and writing)."""
    end = out.seek(0, 2)
    out.seek(start + HEADER.size)
    checksum = 0
    while block := out.read(_BLOCK):
        checksum = crc32(block, checksum)
    out.seek(start)
    out.write(HEADER.pack(MAGIC, _name(codec_name), schema, fmt, end - start - HEADER.size, checksum))
    out.seek(end)


def unseal(data: bytes | memoryview, codec_name: str, schema: int, fmt: Encoding) -> memoryview:
    """The payload of ``data``, checked against the expected codec, schema and format; else
    :class:`CorruptValue` saying what does not match."""
    view = memoryview(data)
    if len(view) < HEADER.size:
        raise CorruptValue(f"{len(view)} bytes, shorter than the {HEADER.size}-byte header")
    magic, name, got_schema, got_fmt, length, checksum = HEADER.unpack_from(view)
    if magic != MAGIC:
        raise CorruptValue(f"no cache header (starts with {bytes(view[:4])!r})")
    if name != _name(codec_name):
        found = name.rstrip(b"\0").decode("ascii", "replace")
        raise CorruptValue(f"a {found!r} value, not {codec_name!r}")
    if got_schema != schema:
        raise CorruptValue(f"schema version {got_schema}, expected {schema}")
    if got_fmt != fmt:
        raise CorruptValue(f"format {got_fmt}, expected {int(fmt)}")
    payload = view[HEADER.size :]
    if len(payload) != length:
        raise CorruptValue(f"payload is {len(payload)} bytes, the header says {length}")
    if crc32(payload) != checksum:
        raise CorruptValue("payload checksum does not match the header")
    return payload
