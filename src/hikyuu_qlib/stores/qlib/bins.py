"""Qlib feature bins: ``features/<instrument>/<field>.<freq>.bin``.

Layout: little-endian float32. Element 0 is the calendar index of the first value (stored as a float),
then one value per calendar step, contiguous, NaN in gaps. A file is valid when its size is a positive
multiple of 4, its header is a non-negative integer below the calendar length, and its values end
within the calendar. Any other file raises :class:`DataFormatError` naming the file and the field.

Reads use positioned reads (``os.pread``; see :mod:`hikyuu_qlib.fileio`) on the header and on exactly the requested slice, nothing else. A memory map
would serve the same bytes, but its page faults happen inside whatever numpy call first touches them,
with the GIL held: when the page cache is cold, a read on an executor thread would then stall the
event loop for the disk's latency. ``pread`` waits for the disk with the GIL released.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hikyuu_qlib.domain import DataFormatError
from hikyuu_qlib.fileio import open_to_read, read_at
from hikyuu_qlib.stores.qlib._io import write_atomic

F32 = np.dtype("<f4")
Float32Array = npt.NDArray[np.float32]
EMPTY = np.empty(0, dtype=F32)
_HEADER = struct.Struct("<f")
#: When the bytes before the requested slice are at most this many, header and slice come in one read.
PREFIX_READ_LIMIT = 64 * 1024


def bin_path(root: Path, folder: str, field: str, freq: str) -> Path:
    """Where Qlib keeps one field of one instrument (folder and field lower-cased, as Qlib does)."""
    return root / "features" / folder.lower() / f"{field.lower()}.{freq.lower()}.bin"


@dataclass(frozen=True, slots=True)
class BinSlice:
    """Values of one field for calendar indices ``start .. start + len(values) - 1``."""

    start: int
    values: Float32Array

    @property
    def end(self) -> int:
        """Last calendar index (``start - 1`` when empty)."""
        return self.start + len(self.values) - 1


def _check_header(path: Path | str, field: str, size: int, head: bytes, n_calendar: int) -> tuple[int, int]:
    if size < 4 or size % 4:
        raise DataFormatError(
            f"corrupt bin {path} (field {field!r}): size {size} bytes is not a positive multiple of 4"
        )
    first: float = _HEADER.unpack_from(head)[0]
    if not math.isfinite(first) or first < 0 or first != int(first):
        raise DataFormatError(
            f"corrupt bin {path} (field {field!r}): header start index {first!r} "
            "is not a non-negative integer"
        )
    start = int(first)
    length = size // 4 - 1
    if start >= n_calendar and (length > 0 or start > n_calendar):
        raise DataFormatError(
            f"corrupt bin {path} (field {field!r}): start index {start} is beyond the calendar "
            f"({n_calendar} entries)"
        )
    if start + length > n_calendar:
        raise DataFormatError(
            f"corrupt bin {path} (field {field!r}): {length} values from index {start} run past the calendar "
            f"({n_calendar} entries)"
        )
    return start, length


def read_bin(path: Path | str, field: str, n_calendar: int, lo: int = 0, hi: int | None = None) -> BinSlice:
    """Values of calendar indices ``[lo, hi]`` that the file holds (may be empty).

    Raises FileNotFoundError when the file is missing (callers turn it into a domain error) and
    DataFormatError when it is corrupt.
    """
    _, _, first, values = read_span(path, field, n_calendar, lo, n_calendar - 1 if hi is None else hi)
    return BinSlice(first, values)


def read_span(
    path: Path | str, field: str, n_calendar: int, lo: int, hi: int
) -> tuple[int, int, int, Float32Array]:
    """The hot path of :func:`read_bin`: ``(bin start, bin length, first index, values)``.

    The bin's own start index and length (from its header and size) come along so that callers can
    check that the bins of one instrument agree, at no extra cost. FileNotFoundError and
    NotADirectoryError propagate (callers name the missing field or folder); other OS errors are a
    DataFormatError naming the file and the field.
    """
    try:
        fd = open_to_read(path)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as exc:
        raise DataFormatError(f"cannot read bin {path} (field {field!r}): {exc}") from exc
    try:
        size = os.fstat(fd).st_size
        prefix = lo <= PREFIX_READ_LIMIT // 4
        head = read_at(fd, min(size, 4 * (hi + 2)) if prefix else 4, 0) if size >= 4 else b""
        start, length = _check_header(path, field, size, head, n_calendar)
        last = min(hi, start + length - 1)
        first = max(lo, start)
        if first > last:
            return start, length, first, EMPTY
        count = last - first + 1
        offset = 4 * (first - start + 1)
        if not prefix:
            head = read_at(fd, 4 * count, offset)
            offset = 0
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataFormatError(f"cannot read bin {path} (field {field!r}): {exc}") from exc
    finally:
        os.close(fd)
    if len(head) < offset + 4 * count:
        raise DataFormatError(f"corrupt bin {path} (field {field!r}): truncated while reading")
    return start, length, first, np.frombuffer(head, dtype=F32, count=count, offset=offset)


def data_extents(
    root: Path, folders: Sequence[str], field: str, freq: str, n_calendar: int
) -> tuple[list[int], list[int]]:
    """The calendar indices of the first and last value of ``field`` in each of ``folders`` (their bins'
    headers and sizes: nothing else is read); ``-1`` for both where the bin is missing or corrupt (the
    caller does not know its span) and ``last < first`` where it is empty."""
    firsts: list[int] = []
    lasts: list[int] = []
    for folder in folders:
        path = bin_path(root, folder, field, freq)
        try:
            start, length, _, _ = read_span(path, field, n_calendar, 0, -1)
        except (OSError, DataFormatError):
            start, length = -1, 0
        firsts.append(start)
        lasts.append(start + length - 1 if start >= 0 else -1)
    return firsts, lasts


def encode_bin(start: int, values: npt.ArrayLike) -> bytes:
    """The bytes of a bin holding ``values`` from calendar index ``start``."""
    data = np.asarray(values, dtype=F32)
    return np.concatenate([np.array([start], dtype=F32), data]).astype(F32, copy=False).tobytes()


def write_bin(path: Path, start: int, values: npt.ArrayLike) -> None:
    """Write a whole bin atomically."""
    if start < 0:
        raise ValueError(f"bin start index must be non-negative, got {start}")
    write_atomic(path, encode_bin(start, values))


def append_bin(path: Path, field: str, n_calendar: int, start: int, values: Float32Array) -> int:
    """Extend an existing bin with ``values`` from calendar index ``start`` (gap filled with NaN).

    The existing bytes are kept as they are (history is never rewritten); values at indices the file
    already holds are dropped. The result replaces the file atomically. Returns the number of values added.
    """
    old = path.read_bytes()
    old_start, old_length = _check_header(path, field, len(old), old[:4], n_calendar)
    next_index = old_start + old_length
    if start < next_index:
        values = values[next_index - start :]
        start = next_index
    if len(values) == 0:
        return 0
    gap = np.full(start - next_index, np.nan, dtype=F32)
    write_atomic(path, old + gap.tobytes() + np.asarray(values, dtype=F32).tobytes())
    return len(values)
