"""Whole-market loads: every stock's bars in one frame, read by a process pool.

h5py holds the GIL (and HDF5 its own global lock), so threads do not help; the tables of each file
are split into contiguous, size-balanced runs that pool workers read into numpy columns
(:mod:`~hikyuu_qlib.stores.hikyuu.bulkio`). Runs come back in code order, so the result is built once
by concatenation, already sorted by (code, datetime). Adjustment is vectorised over the whole frame
with per-code affine coefficients.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import mmap
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import shared_memory
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl

from hikyuu_qlib.domain import (
    Adjust,
    DataFormatError,
    KType,
    LoadErrors,
    Market,
    StockCode,
    UnknownCodeError,
)
from hikyuu_qlib.domain.schema import conform_bars, empty_bars
from hikyuu_qlib.forking import only_fork_safe_threads
from hikyuu_qlib.stores.hikyuu.adjust import (
    WeightEvents,
    affine_arrays,
    apply_affine,
    grouped_coefficients,
    load_kernels,
)
from hikyuu_qlib.stores.hikyuu.bulkio import OUTPUT_COLUMNS, Filled, Task, fill, scan_rows
from hikyuu_qlib.stores.hikyuu.frames import LOT, Columns
from hikyuu_qlib.stores.hikyuu.h5 import ymdhm_to_ms
from hikyuu_qlib.stores.hikyuu.periods import BASE_KIND
from hikyuu_qlib.stringviews import repeat_strings

if TYPE_CHECKING:
    from hikyuu_qlib.stores.hikyuu.store import HikyuuStore

log = logging.getLogger(__name__)

#: Below this many tables a load runs in-process (pool start-up would dominate).
MIN_TABLES_FOR_POOL = 64
CHUNKS_PER_WORKER = 4

OnError = Literal["raise", "skip"]


def read_all(
    store: HikyuuStore,
    *,
    ktype: KType = KType.DAY,
    adjust: Adjust = Adjust.NONE,
    codes: Sequence[StockCode] | None = None,
    workers: int | None = None,
    on_error: OnError = "raise",
    mp_context: str | None = None,
    cache_dir: Path | None = None,
) -> pl.DataFrame:
    """Bars of every stock in the store (or of ``codes``), sorted by (code, datetime).

    ``workers``: processes to use (default: CPU count; 1 reads in-process). A table that cannot be
    read raises :class:`LoadErrors` naming each failed code, or with ``on_error="skip"`` is logged and
    left out. Derived ktypes (week … year, min15 …) are built per code through ``read_bars``.

    With ``cache_dir``, a whole-store load keeps the decoded, unadjusted columns as memory-mapped numpy
    files keyed by the store's data version: the next load (in any process) maps them instead of
    inflating every HDF5 table again, and adjustment is applied on top. A change to any file of the
    store changes the data version, so a stale cache is never read.
    """
    if ktype not in BASE_KIND:
        return _read_derived(store, ktype, adjust, codes, on_error)
    store._require_ktype(ktype)
    if cache_dir is not None and codes is None:
        base = _cached_base(store, ktype, Path(cache_dir), workers, on_error, mp_context)
    else:
        base = _read_base(store, ktype, codes, workers, on_error, mp_context)
    cols, all_names, lengths = base
    if not all_names or cols.datetime.size == 0:
        return empty_bars()
    if adjust is Adjust.NONE:
        return conform_bars(cols.frame(repeat_strings("code", all_names, lengths)))
    a, b = _coefficients(store, cols.datetime, all_names, lengths, adjust)
    if len(cols) < AFFINE_KERNEL_MIN_ROWS:
        return apply_affine(conform_bars(cols.frame(repeat_strings("code", all_names, lengths))), a, b)
    return conform_bars(_adjusted(cols, a, b).frame(repeat_strings("code", all_names, lengths)))


# Below this many bars polars applies the maps faster than loading the compiled kernel in a new process.
AFFINE_KERNEL_MIN_ROWS = 1_000_000


def _adjusted(cols: Columns, a: np.ndarray, b: np.ndarray) -> Columns:
    """``cols`` under the per-row maps: in place when the columns are ours to write (decoded just now),
    into new arrays when they are read-only (mapped from the decoded cache)."""
    prices = (cols.open, cols.high, cols.low, cols.close, cols.volume, cols.amount)
    out = cols if all(x.flags.writeable for x in prices) else Columns(
        cols.datetime, *(np.empty_like(x) for x in prices))
    affine_arrays(a, b, *prices, out.open, out.high, out.low, out.close, out.volume, out.amount)
    return out


Base = tuple[Columns, list[str], np.ndarray]


def _cached_base(
    store: HikyuuStore,
    ktype: KType,
    cache_dir: Path,
    workers: int | None,
    on_error: OnError,
    mp_context: str | None,
) -> Base:
    """The decoded base columns from the cache, or read (and cached when complete)."""
    key = hashlib.sha256(f"{store.source}|{store.data_version()}|{ktype.value}".encode()).hexdigest()[:20]
    target = cache_dir / "hikyuu-bulk" / key
    if (target / "names.json").is_file():
        try:
            names = json.loads((target / "names.json").read_text())
            lengths = np.load(target / "lengths.npy")
            arrays = [np.load(target / f"{c}.npy", mmap_mode="r") for c in OUTPUT_COLUMNS]
            log.info("read_all: mapped decoded columns from %s", target)
            return Columns(*arrays), names, lengths
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable bulk cache %s: %s", target, exc)
    cols, names, lengths = _read_base(store, ktype, None, workers, on_error, mp_context)
    if on_error == "raise":  # a load that skipped failing tables is incomplete: never cache it
        _write_cache(target, cols, names, lengths)
    return cols, names, lengths


def _write_cache(target: Path, cols: Columns, names: list[str], lengths: np.ndarray) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for c in OUTPUT_COLUMNS:
            np.save(staging / f"{c}.npy", getattr(cols, c))
        np.save(staging / "lengths.npy", lengths)
        (staging / "names.json").write_text(json.dumps(names))
        staging.rename(target)
        log.info("read_all: cached decoded columns at %s", target)
    except OSError as exc:
        log.warning("could not write the bulk cache %s: %s", target, exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _read_base(
    store: HikyuuStore,
    ktype: KType,
    codes: Sequence[StockCode] | None,
    workers: int | None,
    on_error: OnError,
    mp_context: str | None,
) -> Base:
    """Decoded, unadjusted columns of every (or the given) table, with their codes and row counts."""
    kind = BASE_KIND[ktype]
    index = store.base_info.stock_index()
    wanted: set[StockCode] | None = None
    if codes is not None:
        wanted = {StockCode.parse(c) for c in codes}
        unknown = sorted(str(c) for c in wanted if c not in index)
        if unknown:
            raise UnknownCodeError(f"unknown code(s) {', '.join(unknown[:20])}: not in {store.layout.db}")

    plan: list[tuple[str, list[str], list[float]]] = []
    file_errors: dict[str, str] = {}
    found: set[StockCode] = set()
    n_workers = max(1, workers or os.cpu_count() or 1)
    for market in sorted(Market, key=lambda m: m.value):
        handle = store.h5(market, kind)
        if handle is None:
            continue
        names: list[str] = []
        scales: list[float] = []
        try:
            listed = handle.names("data")
        except DataFormatError as exc:  # the whole file is unreadable: it fails, the others load
            file_errors[str(handle.path)] = str(exc)
            continue
        for name in listed:
            try:
                code = StockCode.parse(name)
            except ValueError:
                continue
            row = index.get(code)
            if row is None or (wanted is not None and code not in wanted):
                continue
            found.add(code)
            names.append(name)
            scales.append(LOT if (kind == "day" and row.volume_in_lots) else 1.0)
        plan.append((str(handle.path), names, scales))
    if wanted is not None and wanted - found:
        missing = sorted(str(c) for c in wanted - found)
        where = store.layout.datadir
        raise UnknownCodeError(f"no {kind} table for code(s) {', '.join(missing[:20])} in {where}")

    tasks: list[Task] = []
    errors: dict[str, str] = dict(file_errors)
    all_names: list[str] = []
    all_paths: list[str] = []
    all_rows: list[int] = []
    row_lo = 0
    for path, names, scales in plan:
        rows, scan_errors = scan_rows(path, names)
        errors.update(scan_errors)
        tasks += _split(path, names, rows, scales, row_lo, n_workers * CHUNKS_PER_WORKER)
        all_names += names
        all_paths += [path] * len(names)
        all_rows += rows
        row_lo += sum(rows)
    total = row_lo
    store.release_files()  # nothing HDF5 stays open across a fork
    columns, more_errors = _run(tasks, total, n_workers, mp_context, _load_kernels)
    errors.update(more_errors)
    lengths = np.asarray(all_rows, dtype=np.int64)
    columns["datetime"] = _to_ms(columns["datetime"], all_names, all_paths, lengths, errors)
    if errors:
        if on_error == "raise":
            raise LoadErrors({n: DataFormatError(m) for n, m in errors.items()})
        for name, msg in sorted(errors.items()):
            log.warning("read_all skipped %s: %s", name, msg)
        keep_table = np.array([n not in errors for n in all_names], dtype=bool)
        keep_rows = np.repeat(keep_table, lengths)
        columns = {c: v[keep_rows] for c, v in columns.items()}
        all_names = [n for n, k in zip(all_names, keep_table, strict=True) if k]
        lengths = lengths[keep_table]
    cols = Columns(*(columns[f] for f in OUTPUT_COLUMNS))
    return _sort_within_codes(cols, lengths), all_names, lengths


def _load_kernels() -> None:
    """What this process needs after the decode and pays for on first use (the compiled kernels cost
    most of a second): :func:`_run` calls this while the workers decode."""
    ymdhm_to_ms(np.array([199001010000], dtype=np.int64))
    load_kernels()
    import pyarrow  # noqa: F401  (the code column is built through it: importing it costs 0.3 s)


def _to_ms(raw: np.ndarray, names: list[str], paths: list[str], lengths: np.ndarray,
           errors: dict[str, str]) -> np.ndarray:
    """Hikyuu datetimes of the whole column to ms; on bad values, the tables holding them join ``errors``."""
    try:
        return ymdhm_to_ms(raw)
    except DataFormatError:
        pass
    out = np.zeros_like(raw)
    ends = np.cumsum(lengths)
    for name, path, end, count in zip(names, paths, ends.tolist(), lengths.tolist(), strict=True):
        if name not in errors and count:
            try:
                out[end - count:end] = ymdhm_to_ms(raw[end - count:end], where=f"{path}:/data/{name}")
            except DataFormatError as exc:
                errors[name] = str(exc)
    return out


def _split(
    path: str, names: list[str], rows: list[int], scales: list[float], row_lo: int, parts: int
) -> list[Task]:
    """Contiguous runs of tables with about equal row counts."""
    if not names:
        return []
    cum = np.cumsum(rows)
    total = int(cum[-1]) if cum.size else 0
    targets = np.linspace(0, total, min(parts, len(names)) + 1)[1:-1]
    cuts = [0, *np.searchsorted(cum, targets, side="left").tolist(), len(names)]
    tasks: list[Task] = []
    for lo, hi in itertools.pairwise(cuts):
        hi = max(hi, lo)
        if hi <= lo:
            continue
        start = row_lo + (int(cum[lo - 1]) if lo > 0 else 0)
        tasks.append(Task(path, names[lo:hi], rows[lo:hi], scales[lo:hi], start))
    return tasks


def _run(
    tasks: list[Task], total: int, workers: int, context: str | None, warm: Callable[[], None] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Run the tasks; returns the full output columns and the per-table errors. ``warm`` runs in this
    process while pool workers decode (loading compiled kernels needed next)."""
    errors: dict[str, str] = {}
    n_tables = sum(len(t.names) for t in tasks)
    if workers <= 1 or n_tables < MIN_TABLES_FOR_POOL or len(tasks) <= 1:
        columns = {
            c: np.empty(total, dtype=np.int64 if c == "datetime" else np.float64) for c in OUTPUT_COLUMNS
        }
        for t in tasks:
            errors.update(fill(t, columns).errors)
        return columns, errors
    ctx = multiprocessing.get_context(context or _default_context())
    blocks = _allocate(total) if total else None
    try:
        if blocks is not None:
            names = {c: b.name for c, b in blocks.items()}
            for t in tasks:
                t.shm, t.total = names, total
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
            pending = pool.map(fill, tasks)
            if warm is not None:
                warm()  # while the workers decode (the workers are forked already)
            results = list(pending)
        for filled in results:
            errors.update(filled.errors)
        if blocks is None:
            return _concat_parts(list(zip(tasks, results, strict=True)), total), errors
        return {c: _adopt(b, total, np.int64 if c == "datetime" else np.float64) for c, b in blocks.items()}, errors
    finally:
        for block in (blocks or {}).values():
            block.close()
            block.unlink()


def _adopt(block: shared_memory.SharedMemory, total: int, dtype: type) -> np.ndarray:
    """The block's column as an array that owns its own mapping of the memory (no copy).

    The block is unlinked right after, so the memory lives exactly as long as the array. The mapping
    is populated in one call (no page fault per 4 KB). Where the block has no file under /dev/shm, the
    column is copied out instead."""
    path = Path("/dev/shm") / block.name.lstrip("/")
    size = max(total, 1) * 8
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return np.ndarray((total,), dtype=dtype, buffer=block.buf).copy()
    try:
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mapping = mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    return np.frombuffer(mapping, dtype=dtype, count=total)


def _allocate(total: int) -> dict[str, shared_memory.SharedMemory] | None:
    """Shared output columns, or None when /dev/shm cannot hold them (results then travel by pipe)."""
    need = total * 8 * len(OUTPUT_COLUMNS)
    try:
        if shutil.disk_usage("/dev/shm").free < need * 1.2:
            return None
    except OSError:
        return None
    blocks: dict[str, shared_memory.SharedMemory] = {}
    try:
        for column in OUTPUT_COLUMNS:
            blocks[column] = shared_memory.SharedMemory(create=True, size=max(total * 8, 8))
    except OSError:
        for block in blocks.values():
            block.close()
            block.unlink()
        return None
    return blocks


def _concat_parts(parts: list[tuple[Task, Filled]], total: int) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for c in OUTPUT_COLUMNS:
        pieces = [f.columns[c] for _, f in parts if f.columns is not None]
        empty = np.empty(0, dtype=np.int64 if c == "datetime" else np.float64)
        columns[c] = np.concatenate(pieces) if pieces else empty
    return columns


def _default_context() -> str:
    """``HQ_MP_CONTEXT`` if set; else fork when it is safe and available (no other Python threads that
    could hold h5py's lock (see :mod:`hikyuu_qlib.forking`), no HDF5 file left open by the store), because a spawned worker re-imports
    the whole package; else spawn."""
    chosen = os.environ.get("HQ_MP_CONTEXT")
    if chosen:
        return chosen
    if "fork" in multiprocessing.get_all_start_methods() and only_fork_safe_threads():
        return "fork"
    return "spawn"


def _sort_within_codes(cols: Columns, lengths: np.ndarray) -> Columns:
    """Tables are expected in time order; sort the rare code that is not."""
    if cols.datetime.size < 2:
        return cols
    back = cols.datetime[1:] < cols.datetime[:-1]
    ends = np.cumsum(lengths)[:-1] - 1
    back[ends[(ends >= 0) & (ends < back.size)]] = False  # crossing from one code to the next
    if not back.any():
        return cols
    code_ix = np.repeat(np.arange(lengths.size), lengths)
    order = np.lexsort((cols.datetime, code_ix))
    return cols.take(order)


def _coefficients(
    store: HikyuuStore, bar_ms: np.ndarray, names: list[str], lengths: np.ndarray, adjust: Adjust
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row affine maps ``(a, b)`` of the whole frame, from every code's weight events at once."""
    index = store.base_info.stock_index()
    ids = np.array([index[StockCode.parse(n)].stockid for n in names], dtype=np.int64)
    weights = store.base_info.weights(ids.tolist())
    col = {c: weights.get_column(c).to_numpy() for c in weights.columns if c not in ("stockid", "date")}
    sid = weights.get_column("stockid").to_numpy().astype(np.int64)
    date_ms = weights.get_column("date").cast(pl.Int64).to_numpy()
    events = WeightEvents.from_arrays(
        date_ms,
        col["count_as_gift"],
        col["count_for_sell"],
        col["price_for_sell"],
        col["bonus"],
        col["count_of_increasement"],
        col["suogu"],
    )
    kept_sid = sid[events.kept] if events.kept is not None else sid
    ev_lo = np.searchsorted(kept_sid, ids, side="left").astype(np.int64)
    ev_hi = np.searchsorted(kept_sid, ids, side="right").astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    return grouped_coefficients(
        np.ascontiguousarray(bar_ms, dtype=np.int64), offsets[:-1], offsets[1:], events, ev_lo, ev_hi, adjust
    )


def _read_derived(
    store: HikyuuStore, ktype: KType, adjust: Adjust, codes: Sequence[StockCode] | None, on_error: OnError
) -> pl.DataFrame:
    if codes is None:
        frame = store.stocks(valid=None)
        codes = [StockCode.parse(c) for c in frame.get_column("code").to_list()]
        only_present = True
    else:
        only_present = False
    frames: list[pl.DataFrame] = []
    errors: dict[str, BaseException] = {}
    for code in sorted(StockCode.parse(c) for c in codes):  # one read per stock
        try:
            frames.append(store.read_bars(code, ktype=ktype, adjust=adjust))
        except UnknownCodeError:
            if not only_present:
                raise
        except DataFormatError as exc:
            errors[str(code)] = exc
    if errors and on_error == "raise":
        raise LoadErrors(errors)
    return pl.concat(frames) if frames else empty_bars()
