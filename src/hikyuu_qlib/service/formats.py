"""Frames on the wire: the format follows the ``Accept`` header, and the body streams chunk by chunk.

====================================  =====================================================================
media type                            body
====================================  =====================================================================
application/json (default)            ``{"rows": N, …meta, "<key>": [{column: value, …}, …]}``
text/csv                              a header line, then rows; meta in the ``HQ-Meta`` response header
application/vnd.apache.arrow.stream   an Arrow IPC stream; meta in the schema metadata (``hq.meta``);
                                      ``; compression=zstd`` (or ``lz4``) compresses its buffers
application/vnd.apache.parquet        a Parquet file; meta in the file's key-value metadata (``hq.meta``)
====================================  =====================================================================

``meta`` carries what a partial result needs beside the rows (per-code ``errors``, ``without_bars``).
Each chunk is serialised on an executor thread, so a large response never holds the event loop.
Times are ISO 8601 text (exchange local time) in JSON and CSV, ``timestamp[ms]`` in Arrow and Parquet.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from enum import Enum
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
from starlette.responses import StreamingResponse

from hikyuu_qlib.service.problems import ServiceProblem

#: Rows per chunk of a streamed response.
CHUNK_ROWS = 65_536
_PART = 1 << 20


class MediaType(Enum):
    JSON = "application/json"
    CSV = "text/csv"
    ARROW = "application/vnd.apache.arrow.stream"
    PARQUET = "application/vnd.apache.parquet"


_ALIASES = {
    "application/json": MediaType.JSON,
    "text/csv": MediaType.CSV,
    "application/vnd.apache.arrow.stream": MediaType.ARROW,
    "application/vnd.apache.parquet": MediaType.PARQUET,
    "application/x-parquet": MediaType.PARQUET,
    "*/*": MediaType.JSON,
    "application/*": MediaType.JSON,
    "text/*": MediaType.CSV,
}


def negotiate(accept: str | None) -> MediaType:
    """The format of the highest-quality media type of ``Accept`` that the service writes (406 if none)."""
    if not accept or not accept.strip():
        return MediaType.JSON
    offers: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media and quality > 0:
            offers.append((-quality, i, media.lower()))
    for _, _, media in sorted(offers):
        if media in _ALIASES:
            return _ALIASES[media]
    raise ServiceProblem(
        406,
        "NotAcceptable",
        f"cannot answer {accept!r}: ask for one of {', '.join(f.value for f in MediaType)}",
    )


#: Arrow IPC buffer compressions a client may ask for (``Accept: …arrow.stream; compression=zstd``).
ARROW_COMPRESSIONS = ("zstd", "lz4")


def arrow_compression(accept: str | None) -> str | None:
    """The buffer compression the ``Accept`` header asks of an Arrow IPC stream (``compression=zstd`` or
    ``lz4`` on its media range), else None: readers without IPC compression get plain buffers."""
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() != MediaType.ARROW.value:
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "compression":
                chosen = value.strip().strip('"').lower()
                if chosen in ARROW_COMPRESSIONS:
                    return chosen
                raise ServiceProblem(
                    406,
                    "NotAcceptable",
                    f"unknown Arrow compression {chosen!r}: ask for one of {', '.join(ARROW_COMPRESSIONS)}",
                )
    return None


def _json_ready(frame: pl.DataFrame) -> pl.DataFrame:
    temporal = [
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S") if dtype == pl.Datetime else pl.col(c).cast(pl.String)
        for c, dtype in frame.schema.items()
        if dtype == pl.Datetime or dtype == pl.Date
    ]
    return frame.with_columns(temporal) if temporal else frame


def _json_rows(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    _json_ready(frame).write_json(buffer)
    return buffer.getvalue()[1:-1]  # the rows without the enclosing brackets


def _csv_rows(frame: pl.DataFrame, header: bool) -> bytes:
    return _json_ready(frame).write_csv(include_header=header).encode()


class _Sink(io.RawIOBase):
    """An Arrow output that hands over what was written since the last ``take``."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def _meta_bytes(meta: dict[str, Any]) -> bytes:
    return orjson.dumps(meta)


def _chunks(frame: pl.DataFrame, rows: int) -> list[pl.DataFrame]:
    return [frame.slice(i, rows) for i in range(0, frame.height, rows)] or [frame.clear()]


def frame_response(
    frame: pl.DataFrame,
    fmt: MediaType,
    *,
    key: str,
    meta: dict[str, Any],
    executor: Executor | None,
    chunk_rows: int = CHUNK_ROWS,
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """A streamed response of ``frame`` in ``fmt``, with ``meta`` beside the rows."""
    loop = asyncio.get_running_loop()
    meta = {"rows": frame.height, **meta}

    async def on_executor(fn: Callable[[], bytes]) -> bytes:
        return await loop.run_in_executor(executor, fn)

    async def json_body() -> AsyncIterator[bytes]:
        head = _meta_bytes(meta)[:-1] + b',"' + key.encode() + b'":['
        yield head
        for i, chunk in enumerate(_chunks(frame, chunk_rows)):
            if chunk.height:
                part = await on_executor(functools.partial(_json_rows, chunk))
                yield (b"," if i else b"") + part
        yield b"]}"

    async def csv_body() -> AsyncIterator[bytes]:
        for i, chunk in enumerate(_chunks(frame, chunk_rows)):
            yield await on_executor(functools.partial(_csv_rows, chunk, i == 0))

    async def arrow_body() -> AsyncIterator[bytes]:
        table = frame.to_arrow()
        schema = table.schema.with_metadata({b"hq.meta": _meta_bytes(meta)})
        sink = _Sink()
        writer = ipc.new_stream(sink, schema)
        yield sink.take()
        for batch in table.to_batches(max_chunksize=chunk_rows):

            def write(b: pa.RecordBatch = batch) -> bytes:
                writer.write_batch(b.replace_schema_metadata(schema.metadata))
                return sink.take()

            yield await on_executor(write)
        writer.close()
        yield sink.take()

    async def parquet_body() -> AsyncIterator[bytes]:
        def write() -> bytes:
            import pyarrow.parquet as pq

            table = frame.to_arrow()
            table = table.replace_schema_metadata(
                {**(table.schema.metadata or {}), b"hq.meta": _meta_bytes(meta)}
            )
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression="zstd")
            return buffer.getvalue()

        data = await on_executor(write)
        for i in range(0, len(data), _PART):
            yield data[i : i + _PART]

    bodies = {
        MediaType.JSON: json_body,
        MediaType.CSV: csv_body,
        MediaType.ARROW: arrow_body,
        MediaType.PARQUET: parquet_body,
    }
    extra = dict(headers or {})
    if fmt is not MediaType.JSON:
        extra["HQ-Meta"] = header_meta(meta)
    return StreamingResponse(bodies[fmt](), media_type=body_media_type(fmt), headers=extra)


def body_media_type(fmt: MediaType) -> str:
    """The ``Content-Type`` of a body in ``fmt``."""
    return "text/csv; charset=utf-8" if fmt is MediaType.CSV else fmt.value


def encode_frame(
    frame: pl.DataFrame,
    fmt: MediaType,
    *,
    key: str,
    meta: dict[str, Any],
    compression: str | None = None,
) -> bytes:
    """The whole body of ``frame`` in ``fmt`` (what :func:`frame_response` streams), ``meta`` beside the
    rows; ``compression`` compresses an Arrow stream's buffers (see :func:`arrow_compression`)."""
    meta = {"rows": frame.height, **meta}
    if fmt is MediaType.JSON:
        rows = [_json_rows(chunk) for chunk in _chunks(frame, CHUNK_ROWS) if chunk.height]
        head = _meta_bytes(meta)[:-1] + b',"' + key.encode() + b'":['
        return head + b",".join(rows) + b"]}"
    if fmt is MediaType.CSV:
        return b"".join(_csv_rows(chunk, i == 0) for i, chunk in enumerate(_chunks(frame, CHUNK_ROWS)))
    table = frame.to_arrow()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"hq.meta": _meta_bytes(meta)})
    if fmt is MediaType.PARQUET:
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        return buffer.getvalue()
    sink = pa.BufferOutputStream()
    options = ipc.IpcWriteOptions(compression=compression)
    with ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=CHUNK_ROWS)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def header_meta(meta: dict[str, Any], limit: int = 16_000) -> str:
    """``meta`` as ASCII JSON for a response header, its ``errors`` cut short past ``limit`` characters."""
    text = json.dumps(meta, ensure_ascii=True, separators=(",", ":"))
    if len(text) <= limit:
        return text
    errors = meta.get("errors") or {}
    kept = dict(list(errors.items())[:20])
    short = {**meta, "errors": kept, "errors_truncated": len(errors)}
    return json.dumps(short, ensure_ascii=True, separators=(",", ":"))
