"""L3 for data larger than memory: a frame kept on disk as date blocks of Arrow IPC files.

A block set lives in ``<dir>/<op>-blocks/<digest>/`` (``digest`` is the :class:`CacheKey`'s, as in the
disk tier): ``manifest.json`` and ``block-00000.arrow`` …, each block holding every row of a span of
dates, in (datetime, code) order, uncompressed so that a read maps the file and uses its buffers in
place. The manifest names each block's dates, rows, size and CRC-32.

A set is built in a staging directory next to it (``.<digest>.<pid>.building``): each file is written
under a temporary name, flushed to disk (fsync) and renamed; the manifest comes last, then the staging
directory is renamed into place. An interrupted build (Ctrl-C, SIGKILL, a crash) leaves only a staging
directory, which no reader opens and the next build removes. A reader checks each block's size and
CRC-32 against the manifest before its first use; a damaged set is deleted and raises
:class:`CorruptValue`, never served.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import mmap
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import psutil

from hikyuu_qlib.cache.envelope import CorruptValue
from hikyuu_qlib.checksum import crc32
from hikyuu_qlib.domain import DateRange, InvalidInputError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LAYOUT = 1
_BUILDING = ".building"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_crc(path: Path) -> int:
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return crc32(b"")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return crc32(memoryview(data))


def _write_durable(path: Path, write: Any, *, sync: bool = True) -> int:
    """``write(tmp_path)``, fsync (with ``sync``), rename to ``path``; returns the size."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        with tmp.open("rb+") as f:
            if sync:
                os.fsync(f.fileno())
            size = os.fstat(f.fileno()).st_size
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """One block of a set: its file, the first and last date it holds, its rows, bytes and CRC-32."""

    file: str
    start: dt.datetime
    end: dt.datetime
    rows: int
    bytes: int
    crc32: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "rows": self.rows, "bytes": self.bytes, "crc32": self.crc32}  # fmt: skip

    @classmethod
    def of(cls, doc: dict[str, Any]) -> BlockInfo:
        return cls(
            str(doc["file"]), dt.datetime.fromisoformat(doc["start"]), dt.datetime.fromisoformat(doc["end"]),
            int(doc["rows"]), int(doc["bytes"]), int(doc["crc32"]),
        )  # fmt: skip


class BlockSet:
    """A committed block set: read block by block, memory-mapped, checked before first use. ``errors``:
    the codes its build left out because they failed to load (their messages are ``meta["failed"]``)."""

    def __init__(self, path: Path, columns: list[str], blocks: list[BlockInfo], meta: dict[str, Any]) -> None:
        self.path = path
        self.columns = columns
        self.blocks = blocks
        self.meta = meta
        self.errors: dict[str, BaseException] = {}
        self._checked: set[int] = set()

    @classmethod
    def open(cls, path: Path) -> BlockSet | None:
        """The set at ``path``, or ``None`` when there is none (no manifest: never committed)."""
        manifest = path / MANIFEST
        try:
            doc = json.loads(manifest.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            _discard(path)
            raise CorruptValue(f"{manifest}: unreadable manifest ({exc}); the set is deleted") from None
        if doc.get("layout") != LAYOUT:
            _discard(path)
            return None
        blocks = [BlockInfo.of(b) for b in doc["blocks"]]
        return cls(path, list(doc["columns"]), blocks, dict(doc.get("meta", {})))

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.blocks)

    @property
    def bytes(self) -> int:
        return sum(b.bytes for b in self.blocks)

    def largest_block_bytes(self) -> int:
        return max((b.bytes for b in self.blocks), default=0)

    def between(self, dates: DateRange) -> list[int]:
        """Indices of the blocks that hold a date of ``dates``."""
        return [i for i, b in enumerate(self.blocks) if b.end >= dates.start and b.start <= dates.end]

    def check(self, index: int) -> None:
        """Size and CRC-32 of block ``index`` against the manifest (once); :class:`CorruptValue` otherwise."""
        if index in self._checked:
            return
        info = self.blocks[index]
        path = self.path / info.file
        try:
            size = path.stat().st_size
            crc = _file_crc(path) if size == info.bytes else None
        except FileNotFoundError:
            size, crc = -1, None
        if size != info.bytes or crc != info.crc32:
            _discard(self.path)
            raise CorruptValue(
                f"{path}: block does not match the manifest (size {size}, expected {info.bytes}; "
                f"crc32 {crc}, expected {info.crc32}); the set is deleted, build it again"
            )
        self._checked.add(index)

    def read(
        self, index: int, columns: Sequence[str] | None = None, dates: DateRange | None = None
    ) -> pl.DataFrame:
        """Block ``index`` (memory-mapped), optionally only ``columns`` and the rows within ``dates``."""
        self.check(index)
        frame = read_mapped(self.path / self.blocks[index].file, columns)
        if dates is not None:
            info = self.blocks[index]
            if info.start < dates.start or info.end > dates.end:
                frame = frame.filter(pl.col("datetime").is_between(dates.start, dates.end))
        return frame

    def iter_frames(
        self, dates: DateRange | None = None, columns: Sequence[str] | None = None
    ) -> Iterator[pl.DataFrame]:
        """The blocks' frames in date order (within ``dates``), one at a time."""
        indices = range(len(self.blocks)) if dates is None else self.between(dates)
        for i in indices:
            frame = self.read(i, columns, dates)
            if frame.height:
                yield frame

    def frame(self, dates: DateRange | None = None, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """Every block within ``dates`` in one frame (for small sets and tests)."""
        frames = list(self.iter_frames(dates, columns))
        if not frames:
            if not self.blocks:
                raise InvalidInputError(f"{self.path}: the block set holds no rows")
            return read_mapped(self.path / self.blocks[0].file, columns).clear()
        return pl.concat(frames, rechunk=False)


def read_mapped(path: Path, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """An uncompressed Arrow IPC file as a frame over a memory map of it (numeric columns not copied)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path), "r") as source:
        table = ipc.open_file(source).read_all()
    if columns is not None:
        table = table.select(list(columns))
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _staging_pid(name: str) -> int | None:
    parts = name.split(".")
    try:
        return int(parts[-2])
    except (IndexError, ValueError):
        return None


def remove_stale_staging(parent: Path) -> int:
    """Delete the staging directories of builds whose process is gone (interrupted builds)."""
    removed = 0
    if not parent.is_dir():
        return 0
    for entry in parent.iterdir():
        if entry.name.startswith(".") and entry.name.endswith(_BUILDING):
            pid = _staging_pid(entry.name)
            if pid is None or pid == os.getpid() or not psutil.pid_exists(pid):
                _discard(entry)
                removed += 1
    if removed:
        log.info("removed %d interrupted block build(s) under %s", removed, parent)
    return removed


class BlockWriter:
    """Builds one block set in a staging directory; :meth:`commit` puts it in place, or nothing does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(path.parent)
        self.staging = path.parent / f".{path.name}.{os.getpid()}{_BUILDING}"
        _discard(self.staging)
        self.staging.mkdir()
        (self.staging / "parts").mkdir()
        self._blocks: dict[int, BlockInfo] = {}
        self._columns: list[str] | None = None

    def __enter__(self) -> BlockWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def part(self, block: int, part: int, frame: pl.DataFrame) -> None:
        """A piece of block ``block`` (the rows of one group of codes), merged at :meth:`block`."""
        target = self.staging / "parts" / f"{block:05d}-{part:05d}.arrow"  # discarded with the staging dir
        _write_durable(target, lambda tmp: frame.write_ipc(tmp, compression="uncompressed"), sync=False)

    def parts(self, block: int) -> list[Path]:
        return sorted((self.staging / "parts").glob(f"{block:05d}-*.arrow"))

    def block(self, block: int, frame: pl.DataFrame) -> BlockInfo:
        """Write block ``block`` (rows in (datetime, code) order) durably, and drop its parts."""
        if self._columns is None:
            self._columns = frame.columns
        name = f"block-{block:05d}.arrow"
        size = _write_durable(
            self.staging / name, lambda tmp: frame.write_ipc(tmp, compression="uncompressed")
        )
        when = frame.get_column("datetime")
        info = BlockInfo(name, when.min(), when.max(), frame.height, size, _file_crc(self.staging / name))  # type: ignore[arg-type]
        self._blocks[block] = info
        for piece in self.parts(block):
            piece.unlink()
        return info

    def commit(self, meta: dict[str, Any]) -> BlockSet:
        """Write the manifest and rename the staging directory into place."""
        blocks = [self._blocks[i] for i in sorted(self._blocks)]
        doc = {"layout": LAYOUT, "columns": self._columns or [], "blocks": [b.to_json() for b in blocks],
               "meta": meta}  # fmt: skip
        shutil.rmtree(self.staging / "parts", ignore_errors=True)
        _write_durable(self.staging / MANIFEST, lambda tmp: tmp.write_text(json.dumps(doc, indent=1)))
        _fsync_dir(self.staging)
        _discard(self.path)
        os.replace(self.staging, self.path)
        _fsync_dir(self.path.parent)
        opened = BlockSet.open(self.path)
        assert opened is not None
        return opened

    def abort(self) -> None:
        """Remove the staging directory (after :meth:`commit` there is none)."""
        with contextlib.suppress(OSError):
            _discard(self.staging)
