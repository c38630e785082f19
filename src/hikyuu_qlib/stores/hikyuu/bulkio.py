"""The worker side of bulk loads: decode many tables of one HDF5 file straight into shared columns.

Tables are read with h5py's low-level API straight into one record buffer per worker (about twice as
fast as ``dataset[()]`` on Hikyuu's many small zlib-9 tables, where the high-level wrappers cost more
than the data). Workers convert units for their contiguous row range and write it into the shared
output columns in place (or return arrays when there is no shared memory); datetimes are handed back as
stored (``YYYYMMDDhhmm``) and the parent converts the whole column with one compiled pass.
Kept free of polars and of the store so that pool workers import little, and it runs no compiled
kernel (a worker never pays numba's start-up); every function here is module-level and its arguments
and results pickle (spawn-safe).
"""

from __future__ import annotations

import zlib  # only for its error type
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from hikyuu_qlib.stores.hikyuu.h5 import RECORD_DTYPE, RECORD_FIELDS

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

OUTPUT_COLUMNS: tuple[str, ...] = ("datetime", "open", "high", "low", "close", "volume", "amount")


@dataclass
class Task:
    """Consecutive tables of one file and the output rows ``[row_lo, row_lo + sum(rows))`` they fill."""

    path: str
    names: list[str]
    rows: list[int]
    volume_scales: list[float]
    row_lo: int
    shm: dict[str, str] | None = None  # column -> shared memory block name
    total: int = 0


@dataclass
class Filled:
    """A worker's answer: errors by table name, and the columns when no shared memory was used."""

    errors: dict[str, str] = field(default_factory=dict)
    columns: dict[str, npt.NDArray[Any]] | None = None


def scan_rows(path: str, names: list[str]) -> tuple[list[int], dict[str, str]]:
    """Row counts of ``/data/<name>`` tables (low-level, cheap); failures by name."""
    rows: list[int] = []
    errors: dict[str, str] = {}
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        return [0] * len(names), {n: f"{path}: not a readable HDF5 file ({exc})" for n in names}
    with handle:
        fid = handle.id
        for name in names:
            try:
                dsid = h5py.h5d.open(fid, f"/data/{name}".encode())
                shape = dsid.shape
                rows.append(int(shape[0]) if shape else 0)
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                errors[name] = f"{path}: cannot open /data/{name} ({exc})"
                rows.append(0)
    return rows, errors


def fill(task: Task, out: dict[str, npt.NDArray[Any]] | None = None) -> Filled:
    """Decode the task's tables into its rows of the output columns.

    The columns are ``out`` (whole-result arrays, in-process), else the task's shared memory blocks,
    else new arrays returned in :class:`Filled`.
    """
    n = sum(task.rows)
    rec: npt.NDArray[Any] | None = None
    errors: dict[str, str] = {}
    bad_rows: list[tuple[int, int]] = []
    try:
        handle = h5py.File(task.path, "r")
    except OSError as exc:
        return Filled({nm: f"{task.path}: not a readable HDF5 file ({exc})" for nm in task.names})
    pos = 0
    with handle:
        fid = handle.id
        for name, count in zip(task.names, task.rows, strict=True):
            try:
                if count:
                    dsid = h5py.h5d.open(fid, f"/data/{name}".encode())
                    if rec is None:
                        rec = np.empty(n, dtype=_record_dtype(dsid.dtype))
                    _decode_table(dsid, count, rec, pos)
            except (OSError, RuntimeError, KeyError, ValueError, TypeError, zlib.error) as exc:
                errors[name] = f"{task.path}: cannot read /data/{name} ({exc})"
                bad_rows.append((pos, pos + count))
            pos += count
    if rec is None:
        rec = np.zeros(n, dtype=_record_dtype(None))
    lengths = np.asarray(task.rows, dtype=np.int64)
    # Hikyuu's YYYYMMDDhhmm as stored (the caller converts the whole column at once: a worker stays
    # free of compiled kernels); a value above 2**63 reads as negative, which the conversion rejects
    dt = _mask_bad(rec["datetime"], bad_rows).astype(np.int64)
    scale = np.repeat(np.asarray(task.volume_scales, dtype=np.float64), lengths)
    if out is None and task.shm is None:
        return Filled(errors, {c: _convert(c, rec, dt, scale) for c in OUTPUT_COLUMNS})
    if out is not None:
        for column in OUTPUT_COLUMNS:
            _convert(column, rec, dt, scale, out[column][task.row_lo : task.row_lo + n])
        return Filled(errors)
    assert task.shm is not None
    for column, block_name in task.shm.items():
        block = shared_memory.SharedMemory(name=block_name)
        try:
            dtype = np.int64 if column == "datetime" else np.float64
            target: npt.NDArray[Any] = np.ndarray((task.total,), dtype=dtype, buffer=block.buf)
            _convert(column, rec, dt, scale, target[task.row_lo : task.row_lo + n])
            del target
        finally:
            block.close()
    return Filled(errors)


#: (field, divisor, multiplier): prices are stored x1000 (dividing gives the exact decimal), amounts in 1000s
_SCALES = {
    "open": ("openPrice", 1000.0, 1.0),
    "high": ("highPrice", 1000.0, 1.0),
    "low": ("lowPrice", 1000.0, 1.0),
    "close": ("closePrice", 1000.0, 1.0),
    "amount": ("transAmount", 1.0, 1000.0),
}


def _convert(
    column: str, rec: npt.NDArray[Any], dt: I64, scale: F64, dest: npt.NDArray[Any] | None = None
) -> npt.NDArray[Any]:
    """One output column from the records, written into ``dest`` when given."""
    if column == "datetime":
        if dest is None:
            return dt
        dest[:] = dt
        return dest
    if column == "volume":
        result: npt.NDArray[Any] = np.multiply(rec["transCount"], scale, out=dest, casting="unsafe")
        return result
    source, divisor, multiplier = _SCALES[column]
    if divisor != 1.0:
        result = np.divide(rec[source], divisor, out=dest, casting="unsafe")
    else:
        result = np.multiply(rec[source], multiplier, out=dest, casting="unsafe")
    return result


def _record_dtype(file_dtype: Any) -> np.dtype[Any]:
    """The file's record dtype when it is Hikyuu's (so chunks copy straight in), else a standard one."""
    chosen: np.dtype[Any] = RECORD_DTYPE
    if file_dtype is not None and all(f in (file_dtype.names or ()) for f in RECORD_FIELDS):
        chosen = np.dtype(file_dtype)
    return chosen


def _mask_bad(values: npt.NDArray[Any], bad: list[tuple[int, int]]) -> npt.NDArray[Any]:
    if not bad:
        return values
    values = np.array(values)
    for lo, hi in bad:
        values[lo:hi] = 199001010000  # a valid placeholder; these rows are dropped by the caller
    return values


def _decode_table(dsid: Any, count: int, rec: npt.NDArray[Any], pos: int) -> None:
    """Decode one table into ``rec[pos : pos + count]`` with HDF5's own filter pipeline (low-level read:
    no per-table Python wrappers, no intermediate copy when the layout matches)."""
    shape = dsid.shape
    if not shape or int(shape[0]) != count:
        raise ValueError(f"table changed size while reading ({shape} rows, expected {count})")
    dtype = dsid.dtype
    missing = [f for f in RECORD_FIELDS if f not in (dtype.names or ())]
    if missing:
        raise ValueError(f"not a Hikyuu table: missing field(s) {missing}")
    if dtype == rec.dtype:
        dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, rec[pos : pos + count])
        return
    data = np.empty(count, dtype=dtype)
    dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, data)
    for f in RECORD_FIELDS:
        rec[f][pos : pos + count] = data[f]
