"""HDF5 K-line tables: lazy, locked file handles and vectorised unit and datetime conversion."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
from numba import njit

from hikyuu_qlib.domain import DataFormatError, NoBarsError

#: Hikyuu's K-line record, in the field order its importers write.
RECORD_DTYPE = np.dtype(
    [
        ("datetime", "<u8"),
        ("openPrice", "<u4"),
        ("highPrice", "<u4"),
        ("lowPrice", "<u4"),
        ("closePrice", "<u4"),
        ("transAmount", "<u8"),
        ("transCount", "<u8"),
    ]
)
INDEX_DTYPE = np.dtype([("datetime", "<u8"), ("start", "<u8")])
RECORD_FIELDS: tuple[str, ...] = tuple(RECORD_DTYPE.names or ())

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]


def days_from_civil(year: I64, month: I64, day: I64) -> I64:
    """Days since 1970-01-01 of proleptic Gregorian dates, vectorised (no string parsing)."""
    y = year - (month <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    result: I64 = era * 146097 + doe - 719468
    return result


def civil_from_days(days: I64) -> tuple[I64, I64, I64]:
    """Inverse of :func:`days_from_civil`: (year, month, day) arrays."""
    z = days + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year.astype(np.int64), month.astype(np.int64), day.astype(np.int64)


DATE_LUT_BASE = 19000000  # YYYYMMDD - DATE_LUT_BASE indexes the date table
_LUT_YEARS = (1900, 2200)
_date_lut: I64 | None = None


def dates_table() -> I64:
    """Days since the epoch for every ``YYYYMMDD - 19000000`` in 1900..2200 (-1 where no such date)."""
    global _date_lut  # a pure cache of a constant table, built on first use
    if _date_lut is None:
        lo = int(days_from_civil(np.array([_LUT_YEARS[0]]), np.array([1]), np.array([1]))[0])
        hi = int(days_from_civil(np.array([_LUT_YEARS[1]]), np.array([12]), np.array([31]))[0])
        days = np.arange(lo, hi + 1, dtype=np.int64)
        y, m, d = civil_from_days(days)
        table = np.full((_LUT_YEARS[1] + 1) * 10000 - DATE_LUT_BASE, -1, dtype=np.int64)
        table[y * 10000 + m * 100 + d - DATE_LUT_BASE] = days
        _date_lut = table
    return _date_lut


def ymdhm_to_ms(values: npt.NDArray[Any], *, where: str = "") -> I64:
    """Convert Hikyuu's integer ``YYYYMMDDhhmm`` datetimes to ms since the epoch.

    One compiled pass through a table of every date from 1900 to 2200: no string
    parsing, no per-value calendar arithmetic. Raises :class:`DataFormatError` (naming ``where``) for
    any value that is not a valid datetime.
    """
    v = np.asarray(values)
    if v.size == 0:
        return np.empty(0, dtype=np.int64)
    if v.dtype == np.uint64:
        v = v.view(np.int64)  # a valid value is far below 2**63; anything above reads as negative: bad
    elif v.dtype != np.int64:
        v = v.astype(np.int64)
    out = np.empty(v.shape[0], dtype=np.int64)
    first_bad, n_bad = _ymdhm_kernel(v, dates_table(), DATE_LUT_BASE, out)
    if n_bad:
        raise DataFormatError(
            f"{where}: invalid datetime {int(np.asarray(values)[first_bad])} ({n_bad} bad value(s))"
        )
    return out


#: what :func:`ymdhm_one` gives for a value that is not a valid ``YYYYMMDDhhmm``
BAD_DATETIME = -(2**63)


@njit(nogil=True, cache=True)
def _ymdhm_kernel(v: I64, table: I64, base: int, out: I64) -> tuple[int, int]:  # pragma: no cover - compiled
    # serial: it runs inside threads that already divide the work
    n = v.shape[0]
    first, count = n, 0
    for i in range(n):
        ms = ymdhm_one(v[i], table, base)
        out[i] = ms
        if ms == BAD_DATETIME:
            count += 1
            first = min(first, i)
    return first, count


@njit(nogil=True, cache=True, inline="always")
def ymdhm_one(x: int, table: I64, base: int) -> int:  # pragma: no cover - compiled
    """One ``YYYYMMDDhhmm`` to ms since the epoch (:data:`BAD_DATETIME` if invalid); ``table`` and
    ``base`` are :func:`dates_table` and :data:`DATE_LUT_BASE`."""
    date = x // 10000
    hm = x - date * 10000
    d = date - base
    hour = hm // 100
    minute = hm - hour * 100
    days = table[d] if 0 <= d < table.shape[0] and x >= 0 else -1
    if days < 0 or hour > 23 or minute > 59:
        return BAD_DATETIME
    return days * 86_400_000 + hour * 3_600_000 + minute * 60_000


def ms_to_ymdhm(ms: I64) -> U64:
    """Inverse of :func:`ymdhm_to_ms` (minutes precision)."""
    days = np.floor_divide(ms, 86_400_000)
    rest = ms - days * 86_400_000
    year, month, day = civil_from_days(days)
    hour = rest // 3_600_000
    minute = rest // 60_000 % 60
    out = year * 100_000_000 + month * 1_000_000 + day * 10_000 + hour * 100 + minute
    result: U64 = out.astype(np.uint64)
    return result


class H5File:
    """One HDF5 file, opened read-only on first use and guarded by a lock for thread pools."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: h5py.File | None = None

    def _handle(self) -> h5py.File:
        if self._file is None:
            try:
                self._file = h5py.File(self.path, "r")
            except FileNotFoundError:
                raise DataFormatError(f"{self.path}: file disappeared") from None
            except OSError as exc:
                raise DataFormatError(f"{self.path}: not a readable HDF5 file ({exc})") from None
        return self._file

    def names(self, group: str = "data") -> list[str]:
        """Table names under ``group`` (empty when the group is absent)."""
        with self._lock:
            f = self._handle()
            try:
                node = f.get(group)
                return sorted(node.keys()) if isinstance(node, h5py.Group) else []
            except (OSError, RuntimeError, KeyError) as exc:
                raise DataFormatError(f"{self.path}: cannot list /{group} ({exc})") from None

    def has(self, group: str, name: str) -> bool:
        with self._lock:
            try:
                return f"{group}/{name}" in self._handle()
            except (OSError, RuntimeError) as exc:
                raise DataFormatError(f"{self.path}: cannot read /{group} ({exc})") from None

    def read(self, group: str, name: str, *, required: tuple[str, ...] = RECORD_FIELDS) -> npt.NDArray[Any]:
        """The whole table ``/group/name`` as a structured array (fields checked by name); a missing table
        raises :class:`NoBarsError`."""
        with self._lock:
            f = self._handle()
            try:
                node = f.get(f"{group}/{name}")
                if node is None:
                    raise NoBarsError(f"{name}: no table /{group}/{name} in {self.path}")
                data = np.asarray(node[()])
            except NoBarsError:
                raise
            except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
                raise DataFormatError(f"{self.path}: cannot read /{group}/{name} ({exc})") from None
        return check_fields(data, required, f"{self.path}:/{group}/{name}")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                finally:
                    self._file = None


def check_fields(data: npt.NDArray[Any], required: tuple[str, ...], where: str) -> npt.NDArray[Any]:
    names = data.dtype.names or ()
    missing = [n for n in required if n not in names]
    if data.ndim != 1 or missing:
        raise DataFormatError(f"{where}: not a Hikyuu table (missing field(s) {missing or data.dtype})")
    return data
