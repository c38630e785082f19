"""Bulk reads through HDF5's own decoder, for the tables :mod:`~.chunks` leaves to it.

Tables whose layout, record type or filters are not the plain chunked records that :mod:`~.chunks`
decodes itself (contiguous datasets, other compressors, checksums, byte orders) are read here, one
after another, with h5py's low-level API straight into a record buffer, then converted into their rows
of the output columns.
"""

from __future__ import annotations

import zlib  # only for its error type
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from hikyuu_qlib.domain import DataFormatError
from hikyuu_qlib.stores.hikyuu.h5 import RECORD_FIELDS, ymdhm_to_ms

I64 = npt.NDArray[np.int64]

OUTPUT_COLUMNS: tuple[str, ...] = ("datetime", "open", "high", "low", "close", "volume", "amount")


def read_tables(
    path: str,
    names: list[str],
    rows: list[int],
    scales: list[float],
    row_lo: list[int],
    out: dict[str, npt.NDArray[Any]],
) -> dict[str, str]:
    """Decode ``/data/<name>`` tables into ``out[column][row_lo[i] : row_lo[i] + rows[i]]``; failures by name.

    Datetimes are converted to ms since the epoch; the rows of a failed table are left as they were."""
    errors: dict[str, str] = {}
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        return {nm: f"{path}: not a readable HDF5 file ({exc})" for nm in names}
    with handle:
        fid = handle.id
        for name, count, scale, lo in zip(names, rows, scales, row_lo, strict=True):
            try:
                dsid = h5py.h5d.open(fid, f"/data/{name}".encode())
                rec = _read_records(dsid, count)
                dt = ymdhm_to_ms(rec["datetime"], where=f"{path}:/data/{name}")
            except DataFormatError as exc:
                errors[name] = str(exc)
                continue
            except (OSError, RuntimeError, KeyError, ValueError, TypeError, zlib.error) as exc:
                errors[name] = f"{path}: cannot read /data/{name} ({exc})"
                continue
            for column in OUTPUT_COLUMNS:
                _convert(column, rec, dt, scale, out[column][lo : lo + count])
    return errors


#: (field, divisor, multiplier): prices are stored x1000 (dividing gives the exact decimal), amounts in 1000s
_SCALES = {
    "open": ("openPrice", 1000.0, 1.0),
    "high": ("highPrice", 1000.0, 1.0),
    "low": ("lowPrice", 1000.0, 1.0),
    "close": ("closePrice", 1000.0, 1.0),
    "amount": ("transAmount", 1.0, 1000.0),
}


def _convert(column: str, rec: npt.NDArray[Any], dt: I64, scale: float, dest: npt.NDArray[Any]) -> None:
    """One output column from the records, written into ``dest``."""
    if column == "datetime":
        dest[:] = dt
    elif column == "volume":
        np.multiply(rec["transCount"], scale, out=dest, casting="unsafe")
    else:
        source, divisor, multiplier = _SCALES[column]
        if divisor != 1.0:
            np.divide(rec[source], divisor, out=dest, casting="unsafe")
        else:
            np.multiply(rec[source], multiplier, out=dest, casting="unsafe")


def _read_records(dsid: Any, count: int) -> npt.NDArray[Any]:
    """The table's records with HDF5's own filter pipeline (low-level read: no per-table wrappers)."""
    shape = dsid.shape
    if not shape or int(shape[0]) != count:
        raise ValueError(f"table changed size while reading ({shape} rows, expected {count})")
    dtype = dsid.dtype
    missing = [f for f in RECORD_FIELDS if f not in (dtype.names or ())]
    if missing:
        raise ValueError(f"not a Hikyuu table: missing field(s) {missing}")
    rec = np.empty(count, dtype=dtype)
    dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, rec)
    return rec
