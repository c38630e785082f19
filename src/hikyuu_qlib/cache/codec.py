"""Value codecs: how frames and JSON documents are written to and read from the cache's tiers.

Frames are Arrow IPC: the stream format (lz4) in Redis, the file format (uncompressed, so that a read
maps the file and uses its buffers in place) on disk. JSON documents are orjson text. Nothing is ever
pickled. Codecs of richer values (a load result, a model record) wrap these two.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Generic, TypeVar

import orjson
import polars as pl

from hikyuu_qlib.domain.cache import Tier

T = TypeVar("T")


def write_frame(
    frame: pl.DataFrame, out: IO[bytes], tier: Tier, metadata: dict[str, str] | None = None
) -> None:
    """``frame`` as an Arrow IPC stream (Redis) or file (disk), with optional schema metadata."""
    import pyarrow.ipc as ipc

    table = frame.to_arrow()
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    if tier is Tier.DISK:
        with ipc.new_file(out, table.schema) as writer:
            writer.write_table(table)
    else:
        options = ipc.IpcWriteOptions(compression="lz4")
        with ipc.new_stream(out, table.schema, options=options) as writer:
            writer.write_table(table)


def read_frame(payload: memoryview, tier: Tier) -> tuple[pl.DataFrame, dict[str, str]]:
    """The frame of a payload and its schema metadata; ``ValueError`` when it is not Arrow IPC."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    try:
        buffer = pa.py_buffer(payload)  # in place: on disk the payload is a mapped file
        reader = ipc.open_file(buffer) if tier is Tier.DISK else ipc.open_stream(buffer)
        table = reader.read_all()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not an Arrow IPC {'file' if tier is Tier.DISK else 'stream'}: {exc}") from None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    frame = pl.from_arrow(table)
    if not isinstance(frame, pl.DataFrame):  # pragma: no cover - a table always gives a frame
        raise ValueError("not a table")
    return frame, meta


@dataclass(frozen=True)
class FrameCodec:
    """Polars frames."""

    name: str = "frame"
    schema: int = 1
    storable: bool = True
    kind: str = "arrow"

    def size(self, value: pl.DataFrame) -> int:
        return int(value.estimated_size()) + 256

    def write(self, value: pl.DataFrame, out: IO[bytes], tier: Tier) -> None:
        write_frame(value, out, tier)

    def read(self, payload: memoryview, tier: Tier) -> pl.DataFrame:
        return read_frame(payload, tier)[0]


@dataclass(frozen=True)
class JsonCodec(Generic[T]):
    """Values kept as JSON documents, through ``to_doc`` and ``from_doc`` (identity by default)."""

    name: str = "json"
    schema: int = 1
    to_doc: Callable[[T], Any] = lambda value: value
    from_doc: Callable[[Any], T] = lambda doc: doc
    storable: bool = True
    kind: str = "json"

    def size(self, value: T) -> int:
        return len(orjson.dumps(self.to_doc(value))) * 4 + 256  # decoded objects outweigh their text

    def write(self, value: T, out: IO[bytes], tier: Tier) -> None:
        out.write(orjson.dumps(self.to_doc(value)))

    def read(self, payload: memoryview, tier: Tier) -> T:
        try:
            doc = orjson.loads(bytes(payload))
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        try:
            return self.from_doc(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a {self.name} document: {exc}") from None


@dataclass(frozen=True)
class MemoryOnly(Generic[T]):
    """Values that live in process memory only (e.g. loaded boosters); ``sizer`` gives their bytes."""

    name: str
    sizer: Callable[[T], int]
    schema: int = 1
    storable: bool = False
    kind: str = "memory"

    def size(self, value: T) -> int:
        return int(self.sizer(value))

    def write(self, value: T, out: IO[bytes], tier: Tier) -> None:
        raise TypeError(f"{self.name} values are kept in memory only")

    def read(self, payload: memoryview, tier: Tier) -> T:
        raise TypeError(f"{self.name} values are kept in memory only")


def encode(codec: Any, value: Any, tier: Tier) -> bytes:
    """The payload of ``value`` for ``tier`` as bytes."""
    out = io.BytesIO()
    codec.write(value, out, tier)
    return out.getvalue()


FRAME = FrameCodec()
