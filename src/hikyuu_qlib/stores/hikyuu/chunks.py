"""Hikyuu tables decoded from their raw HDF5 chunks, off the GIL.

HDF5 decodes a chunk under its global lock, and h5py holds the GIL while it does, so reading many
tables through HDF5 runs on one core (and its filter pipeline is slower than it needs to be). A Hikyuu
K-line table is a 1-D chunked dataset of fixed-size records filtered by shuffle and deflate, which is
simple to decode ourselves: HDF5 is asked only where each chunk lies (:func:`plan_file`), then threads
read the stored bytes (``os.pread``), inflate them (ISA-L when installed, else zlib; both release the
GIL) and a compiled kernel unshuffles the records straight into the output columns, converting units on
the way (:func:`decode`). Tables with any other layout, type or filter are left to HDF5 (``fallback``).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import h5py
import numpy as np
import numpy.typing as npt
from numba import njit

from hikyuu_qlib.fileio import open_to_read, read_at
from hikyuu_qlib.stores.hikyuu.h5 import (
    BAD_DATETIME,
    DATE_LUT_BASE,
    RECORD_DTYPE,
    RECORD_FIELDS,
    dates_table,
    ymdhm_one,
)

try:  # ISA-L's inflate is about twice as fast as zlib's, with the same stream format
    from isal import isal_zlib

    inflate: Callable[[bytes], bytes] = isal_zlib.decompress
    INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, cast("type[Exception]", isal_zlib.error))
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the portable fallback
    inflate = zlib.decompress
    INFLATE_ERRORS = (zlib.error,)

_CHUNK_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, *INFLATE_ERRORS)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Hikyuu's record fields with their stored types, in the order the kernel takes their offsets.
FIELDS: tuple[tuple[str, np.dtype[Any]], ...] = tuple((name, RECORD_DTYPE[name]) for name in RECORD_FIELDS)
PRICE_DIVISOR = 1000.0
AMOUNT_SCALE = 1000.0
_SHUFFLE, _DEFLATE = 1, 2  # pipeline bits of a Layout


@dataclass(frozen=True)
class Layout:
    """How a table's chunks are stored: rows per chunk, record size, field offsets, filters applied."""

    chunk_rows: int
    itemsize: int
    offsets: tuple[int, ...]
    shuffle_at: int  # position of shuffle in the pipeline (-1: none); a chunk's filter mask uses it
    deflate_at: int


@dataclass
class FilePlan:
    """Where the chunks of some tables of one file lie; one entry per chunk in the arrays."""

    path: str
    names: Sequence[str]
    rows: list[int]
    errors: dict[int, str] = field(default_factory=dict)  # table index -> message
    fallback: list[int] = field(default_factory=list)  # tables HDF5 must decode
    layouts: list[Layout] = field(default_factory=list)
    table: list[int] = field(default_factory=list)  # per chunk: table index in this file
    layout: list[int] = field(default_factory=list)
    start: list[int] = field(default_factory=list)  # first row of the chunk in its table
    offset: list[int] = field(default_factory=list)  # byte offset in the file
    size: list[int] = field(default_factory=list)  # stored bytes
    mask: list[int] = field(default_factory=list)  # filters skipped for this chunk


def plan_file(path: str, names: Sequence[str]) -> FilePlan:
    """Row counts and chunk locations of ``/data/<name>`` tables (HDF5 metadata only, no chunk is read).

    A table that cannot be opened goes to ``errors``; one whose layout is not Hikyuu's plain chunked
    records goes to ``fallback``. A file that is not HDF5 fails every table."""
    plan = FilePlan(path, names, [0] * len(names))
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        plan.errors = {i: f"{path}: not a readable HDF5 file ({exc})" for i in range(len(names))}
        return plan
    known = _KnownLayouts()
    with handle:
        fid = handle.id
        for i, name in enumerate(names):
            try:
                dsid = h5py.h5d.open(fid, f"/data/{name}".encode())
                shape = dsid.shape
                plan.rows[i] = rows = int(shape[0]) if shape else 0
                lix = known.index(dsid) if len(shape) == 1 else None
                if lix is None:
                    plan.fallback.append(i)
                elif rows:
                    _add_chunks(plan, i, dsid, rows, lix, known.layouts[lix])
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                plan.errors[i] = f"{path}: cannot open /data/{name} ({exc})"
    plan.layouts = known.layouts
    return plan


class _KnownLayouts:
    """The layouts met so far in a file, recognised by HDF5's own type and property-list equality (a
    file's tables nearly always share one, and converting each table's type to numpy costs more than
    opening it)."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, Any, int | None]] = []  # (type id, creation plist, layout index)
        self.layouts: list[Layout] = []

    def index(self, dsid: Any) -> int | None:
        tid, dcpl = dsid.get_type(), dsid.get_create_plist()
        for known_tid, known_dcpl, lix in self.seen:
            if tid.equal(known_tid) and dcpl.equal(known_dcpl):
                return lix
        layout = layout_of(dsid)
        lix = None
        if layout is not None:
            lix = len(self.layouts)
            self.layouts.append(layout)
        self.seen.append((tid, dcpl, lix))
        return lix


def _add_chunks(plan: FilePlan, i: int, dsid: Any, rows: int, lix: int, layout: Layout) -> None:
    found: list[tuple[int, int, int, int]] = []

    def visit(info: Any) -> None:
        found.append(
            (int(info.chunk_offset[0]), int(info.byte_offset), int(info.size), int(info.filter_mask))
        )

    if hasattr(dsid, "chunk_iter"):
        dsid.chunk_iter(visit)
    else:  # pragma: no cover - HDF5 older than 1.14
        for k in range(dsid.get_num_chunks()):
            visit(dsid.get_chunk_info(k))
    found.sort()
    covered = sum(min(layout.chunk_rows, rows - s) for s, *_ in found if 0 <= s < rows)
    if covered != rows or len({s for s, *_ in found}) != len(found):  # sparse: HDF5 supplies fill values
        plan.fallback.append(i)
        return
    for start, offset, size, mask in found:
        plan.table.append(i)
        plan.layout.append(lix)
        plan.start.append(start)
        plan.offset.append(offset)
        plan.size.append(size)
        plan.mask.append(mask)


def layout_of(dsid: Any) -> Layout | None:
    """The table's :class:`Layout` when its chunks can be decoded here, else ``None``."""
    dcpl = dsid.get_create_plist()
    if dcpl.get_layout() != h5py.h5d.CHUNKED:
        return None
    dtype = dsid.dtype
    fields = dtype.fields or {}
    if any(name not in fields or fields[name][0] != kind for name, kind in FIELDS):
        return None
    pipeline = tuple(
        (dcpl.get_filter(k)[0], tuple(dcpl.get_filter(k)[2])) for k in range(dcpl.get_nfilters())
    )
    return _layout(
        int(dcpl.get_chunk()[0]),
        int(dtype.itemsize),
        tuple(int(fields[name][1]) for name, _ in FIELDS),
        pipeline,
    )


def _layout(
    chunk_rows: int,
    itemsize: int,
    offsets: tuple[int, ...],
    pipeline: tuple[tuple[int, tuple[int, ...]], ...],
) -> Layout | None:
    codes = [code for code, _ in pipeline]
    if any(c not in (h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE) for c in codes) or len(
        set(codes)
    ) != len(codes):
        return None
    shuffle_at = codes.index(h5py.h5z.FILTER_SHUFFLE) if h5py.h5z.FILTER_SHUFFLE in codes else -1
    deflate_at = codes.index(h5py.h5z.FILTER_DEFLATE) if h5py.h5z.FILTER_DEFLATE in codes else -1
    if shuffle_at >= 0 and (deflate_at >= 0 and shuffle_at > deflate_at):
        return None  # deflate applied before shuffle: not a pipeline any writer uses
    if shuffle_at >= 0 and pipeline[shuffle_at][1][:1] not in ((), (itemsize,)):
        return None  # shuffled by some other element size
    return Layout(chunk_rows, itemsize, offsets, shuffle_at, deflate_at)


@dataclass
class Output:
    """Whole-result columns: datetimes (ms since the epoch), and prices, volume, amount in yuan/shares."""

    datetime: I64
    values: F64  # (6, n): open, high, low, close, volume, amount


def decode(
    plans: Sequence[FilePlan],
    row_lo: Sequence[int],
    scales: Sequence[Sequence[float]],
    out: Output,
    threads: int,
    while_waiting: Callable[[], None] | None = None,
) -> list[dict[int, str]]:
    """Decode every planned chunk into ``out``; per plan, the tables that failed (index -> message).

    ``row_lo[p]`` is where plan ``p``'s first table starts in the output, ``scales[p][i]`` the volume
    scale of its table ``i``. Work is split into contiguous runs of about equal stored bytes, one per
    thread; ``while_waiting`` runs on the calling thread meanwhile."""
    _warm_kernel()
    jobs = [
        _Job.of(p, plan, lo, sc) for p, (plan, lo, sc) in enumerate(zip(plans, row_lo, scales, strict=True))
    ]
    runs = _balanced_runs(jobs, threads)
    failures: list[dict[int, str]] = [{} for _ in plans]

    def run(part: list[tuple[int, int, int]]) -> list[tuple[int, int, str]]:
        failed: list[tuple[int, int, str]] = []
        for p, lo, hi in part:
            failed += jobs[p].run(lo, hi, out)
        return failed

    if threads <= 1 or len(runs) <= 1:
        results = [run(part) for part in runs]
        if while_waiting is not None:
            while_waiting()
    else:
        with ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="hq-h5-chunks") as pool:
            pending = pool.map(run, runs)
            if while_waiting is not None:
                while_waiting()
            results = list(pending)
    for failed in results:
        for p, t, message in failed:
            failures[p].setdefault(t, message)
    return failures


@dataclass
class _Job:
    """The chunks of one plan, with where each lands in the output."""

    plan: FilePlan
    index: int  # of the plan
    dest: I64  # per chunk: output row of its first row
    take: I64  # per chunk: rows it holds (the last chunk of a table is partly padding)
    scale: F64  # per chunk
    offsets: I64  # (n_layouts, 7)
    dates: I64 = field(default_factory=dates_table)

    @classmethod
    def of(cls, index: int, plan: FilePlan, row_lo: int, scales: Sequence[float]) -> _Job:
        table = np.asarray(plan.table, dtype=np.int64)
        first = row_lo + np.concatenate(([0], np.cumsum(plan.rows, dtype=np.int64)))[:-1]
        start = np.asarray(plan.start, dtype=np.int64)
        chunk_rows = np.array([lay.chunk_rows for lay in plan.layouts], dtype=np.int64)
        rows = np.asarray(plan.rows, dtype=np.int64)
        lix = np.asarray(plan.layout, dtype=np.int64)
        take = np.minimum(chunk_rows[lix], rows[table] - start) if table.size else table
        offsets = np.array([lay.offsets for lay in plan.layouts], dtype=np.int64).reshape(-1, len(FIELDS))
        return cls(
            plan,
            index,
            first[table] + start if table.size else table,
            take,
            np.asarray(scales, dtype=np.float64)[table] if table.size else np.empty(0),
            offsets,
        )

    def run(self, lo: int, hi: int, out: Output) -> list[tuple[int, int, str]]:
        plan = self.plan
        failed: list[tuple[int, int, str]] = []
        try:
            fd = open_to_read(plan.path)
        except OSError as exc:
            return [
                (self.index, t, f"{plan.path}: cannot open ({exc})") for t in sorted(set(plan.table[lo:hi]))
            ]
        try:
            for k in range(lo, hi):
                try:
                    self._chunk(fd, k, out)
                except _CHUNK_ERRORS as exc:
                    t = plan.table[k]
                    failed.append(
                        (
                            self.index,
                            t,
                            f"{plan.path}:/data/{plan.names[t]}: chunk at byte {plan.offset[k]}: {exc}",
                        )
                    )
        finally:
            os.close(fd)
        return failed

    def _chunk(self, fd: int, k: int, out: Output) -> None:
        plan = self.plan
        layout = plan.layouts[plan.layout[k]]
        size = plan.size[k]
        data = read_at(fd, size, plan.offset[k])
        if len(data) != size:
            raise ValueError(f"file ends {size - len(data)} bytes into the chunk (truncated)")
        mask = plan.mask[k]
        if layout.deflate_at >= 0 and not mask >> layout.deflate_at & 1:
            data = inflate(data)
        expected = layout.chunk_rows * layout.itemsize
        if len(data) != expected:
            raise ValueError(f"chunk holds {len(data)} bytes, expected {expected}")
        shuffled = layout.shuffle_at >= 0 and not mask >> layout.shuffle_at & 1
        n_bad, first_bad = _unpack(
            np.frombuffer(data, dtype=np.uint8),
            layout.chunk_rows,
            layout.itemsize,
            shuffled,
            self.offsets[plan.layout[k]],
            int(self.take[k]),
            self.scale[k],
            int(self.dest[k]),
            out.datetime,
            out.values,
            self.dates,
            DATE_LUT_BASE,
        )
        if n_bad:
            raise ValueError(f"invalid datetime {first_bad % 2**64} ({n_bad} bad value(s) in the chunk)")


def _balanced_runs(jobs: list[_Job], parts: int) -> list[list[tuple[int, int, int]]]:
    """Split all chunks (in plan order) into ``parts`` contiguous runs of about equal stored bytes."""
    sizes = np.concatenate([np.asarray(j.plan.size, dtype=np.int64) for j in jobs] or [np.empty(0, np.int64)])
    if sizes.size == 0:
        return []
    bounds = np.concatenate(([0], np.cumsum([len(j.plan.size) for j in jobs])))
    cum = np.cumsum(sizes)
    cuts = np.unique(
        np.concatenate(
            ([0], np.searchsorted(cum, np.linspace(0, cum[-1], max(parts, 1) + 1)[1:-1]), [sizes.size])
        )
    )
    runs: list[list[tuple[int, int, int]]] = []
    for lo, hi in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
        part = []
        for p in range(len(jobs)):
            a, b = max(lo, int(bounds[p])), min(hi, int(bounds[p + 1]))
            if a < b:
                part.append((p, a - int(bounds[p]), b - int(bounds[p])))
        if part:
            runs.append(part)
    return runs


def _warm_kernel() -> None:
    """Load the compiled kernel (from numba's cache) before threads race to do it."""
    _unpack(
        np.zeros(40, dtype=np.uint8),
        1,
        40,
        False,
        np.array([0, 8, 12, 16, 20, 24, 32], dtype=np.int64),
        1,
        1.0,
        0,
        np.zeros(1, dtype=np.int64),
        np.zeros((6, 1)),
        dates_table(),
        DATE_LUT_BASE,
    )


@njit(nogil=True, cache=True)
def _unpack(
    buf: Any,
    n: int,
    itemsize: int,
    shuffled: bool,
    offs: Any,
    take: int,
    scale: float,
    dest: int,
    dt: Any,
    values: Any,
    dates: Any,
    date_base: int,
) -> tuple[int, int]:  # pragma: no cover - compiled
    # byte b of record i sits at b*n + i when shuffled (byte planes), else at i*itemsize + b; returns
    # the number of invalid datetimes and the first of them
    ps = n if shuffled else 1
    es = 1 if shuffled else itemsize
    o = offs[0]
    n_bad, first_bad = 0, 0
    for i in range(take):
        raw = np.int64(_u64(buf, o, ps, es, i))
        ms = ymdhm_one(raw, dates, date_base)  # type: ignore[arg-type]
        dt[dest + i] = ms
        if ms == BAD_DATETIME:
            if n_bad == 0:
                first_bad = raw  # type: ignore[assignment]
            n_bad += 1
    for f in range(4):
        o = offs[1 + f]
        row = values[f]
        for i in range(take):
            row[dest + i] = _u32(buf, o, ps, es, i) / PRICE_DIVISOR
    o = offs[6]
    row = values[4]
    for i in range(take):
        row[dest + i] = np.float64(_u64(buf, o, ps, es, i)) * scale
    o = offs[5]
    row = values[5]
    for i in range(take):
        row[dest + i] = np.float64(_u64(buf, o, ps, es, i)) * AMOUNT_SCALE
    return n_bad, first_bad


@njit(inline="always")
def _u32(buf: Any, o: int, ps: int, es: int, i: int) -> Any:  # pragma: no cover - compiled
    base = o * ps + i * es
    return (
        np.uint32(buf[base])
        | np.uint32(buf[base + ps]) << np.uint32(8)
        | np.uint32(buf[base + 2 * ps]) << np.uint32(16)
        | np.uint32(buf[base + 3 * ps]) << np.uint32(24)
    )


@njit(inline="always")
def _u64(buf: Any, o: int, ps: int, es: int, i: int) -> Any:  # pragma: no cover - compiled
    base = o * ps + i * es
    v = np.uint64(0)
    for b in range(8):
        v |= np.uint64(buf[base + b * ps]) << np.uint64(8 * b)
    return v
