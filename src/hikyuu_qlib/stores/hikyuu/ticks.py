"""Hikyuu's time-line (分时) and tick (分笔) tables as frames.

``{market}_time.h5`` holds ``/data/<MARKET><CODE>`` tables of records ``datetime u8`` (``YYYYMMDDhhmm``),
``price u8`` (× 1000) and ``vol u8``, one a minute; ``{market}_trans.h5`` holds tables of ticks
``datetime u8`` (``YYYYMMDDhhmmss``), ``price u8`` (× 1000), ``vol u8`` and ``buyorsell u1`` (Hikyuu's
``TransRecord::direct``: 0 buy, 1 sell, 2 call auction, anything else unknown). Fields are read by name.

Units as the day bars of the same store: prices in yuan; volume in shares, the stored lots of 100 shares
multiplied out for everything but indices (whose volume stays as stored, as their day bars do).
Datetimes are ``Datetime(ms)``. A value that is not a valid datetime fails the read
(:class:`DataFormatError` naming the file and table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain import DataFormatError, DateRange
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.stores.hikyuu.h5 import H5File, ymdhm_to_ms

TIMELINE_SCHEMA: dict[str, pl.DataType] = {
    "code": pl.String(),
    "datetime": DATETIME,
    "price": pl.Float64(),
    "volume": pl.Float64(),
}
#: Hikyuu's ``direct`` codes, in order.
DIRECTIONS: tuple[str, ...] = ("buy", "sell", "auction", "unknown")
DIRECTION = pl.Enum(list(DIRECTIONS))
TRANS_SCHEMA: dict[str, pl.DataType] = {**TIMELINE_SCHEMA, "direction": DIRECTION}

TIMELINE_FIELDS = ("datetime", "price", "vol")
TRANS_FIELDS = ("datetime", "price", "vol", "buyorsell")


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def read_timeline(
    path: Path, code: str, *, volume_scale: float, dates: DateRange | None = None
) -> pl.DataFrame:
    """The time-line of ``code`` (``TIMELINE_SCHEMA``, ascending) within ``dates``."""
    rec = _read(path, code, TIMELINE_FIELDS)
    ms = ymdhm_to_ms(rec["datetime"], where=f"{path}:/data/{code}")
    return _frame(code, ms, rec, volume_scale, dates, TIMELINE_SCHEMA)


def read_trans(path: Path, code: str, *, volume_scale: float, dates: DateRange | None = None) -> pl.DataFrame:
    """The ticks of ``code`` (``TRANS_SCHEMA``, ascending) within ``dates``."""
    rec = _read(path, code, TRANS_FIELDS)
    where = f"{path}:/data/{code}"
    stamps = np.asarray(rec["datetime"]).astype(np.int64)
    seconds = stamps % 100
    if stamps.size and (bool((seconds > 59).any()) or bool((stamps < 0).any())):
        bad = int(stamps[np.flatnonzero((seconds > 59) | (stamps < 0))[0]])
        raise DataFormatError(f"{where}: invalid datetime {bad} (YYYYMMDDhhmmss)")
    ms = ymdhm_to_ms(stamps // 100, where=where) + seconds * 1000
    direct = np.asarray(rec["buyorsell"]).astype(np.int64)
    labels = np.where((direct >= 0) & (direct < len(DIRECTIONS) - 1), direct, len(DIRECTIONS) - 1)
    extra = {"direction": pl.Series("direction", np.asarray(DIRECTIONS)[labels], dtype=DIRECTION)}
    return _frame(code, ms, rec, volume_scale, dates, TRANS_SCHEMA, extra)


def _read(path: Path, code: str, fields: tuple[str, ...]) -> npt.NDArray[Any]:
    handle = H5File(path)
    try:
        return handle.read("data", code, required=fields)
    finally:
        handle.close()


def _frame(
    code: str,
    ms: npt.NDArray[np.int64],
    rec: npt.NDArray[Any],
    volume_scale: float,
    dates: DateRange | None,
    schema: dict[str, pl.DataType],
    extra: dict[str, pl.Series] | None = None,
) -> pl.DataFrame:
    order = np.argsort(ms, kind="stable") if ms.size > 1 and bool((np.diff(ms) < 0).any()) else None
    columns: dict[str, Any] = {
        "code": pl.repeat(code, ms.size, dtype=pl.String, eager=True),
        "datetime": pl.Series("datetime", ms, dtype=pl.Int64).cast(DATETIME),
        "price": np.asarray(rec["price"]).astype(np.float64) / 1000.0,
        "volume": np.asarray(rec["vol"]).astype(np.float64) * volume_scale,
        **(extra or {}),
    }
    frame = pl.DataFrame(columns).select([pl.col(c).cast(t) for c, t in schema.items()])
    if order is not None:
        frame = frame[order]
    if dates is not None:
        frame = frame.filter(pl.col("datetime").is_between(dates.start, dates.end))
    return frame
