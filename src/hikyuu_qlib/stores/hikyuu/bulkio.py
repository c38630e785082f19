"""The worker side of bulk loads: read many tables of one HDF5 file into concatenated columns.

Kept free of polars and of the store so that pool workers import little; every function here is
module-level and its arguments and results pickle (spawn-safe).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from hikyuu_qlib.stores.hikyuu.h5 import RECORD_FIELDS, ymdhm_to_ms

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass
class Chunk:
    """Bars of consecutive tables of one file, in natural units, concatenated in table order."""

    names: list[str]
    lengths: I64
    datetime: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    amount: F64
    errors: dict[str, str] = field(default_factory=dict)


def read_chunk(path: str, names: list[str], volume_scales: list[float]) -> Chunk:
    """Read ``/data/<name>`` for each name; a table that fails is reported in ``errors``."""
    parts: list[npt.NDArray[Any]] = []
    ok: list[str] = []
    scales: list[float] = []
    errors: dict[str, str] = {}
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        return _empty({n: f"{path}: not a readable HDF5 file ({exc})" for n in names})
    with handle:
        for name, scale in zip(names, volume_scales, strict=True):
            try:
                data = np.asarray(handle[f"data/{name}"][()])
                missing = [f for f in RECORD_FIELDS if f not in (data.dtype.names or ())]
                if missing:
                    raise ValueError(f"missing field(s) {missing}")
            except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
                errors[name] = f"{path}: cannot read /data/{name} ({exc})"
                continue
            parts.append(data)
            ok.append(name)
            scales.append(scale)
    if not parts:
        return _empty(errors)
    lengths = np.array([p.shape[0] for p in parts], dtype=np.int64)
    # one pass per field over all tables: gather the field arrays, then convert in bulk
    def cat(f: str) -> npt.NDArray[Any]:
        return np.concatenate([p[f] for p in parts])

    raw_dt = cat("datetime")
    try:
        dt = ymdhm_to_ms(raw_dt, where=path)
    except Exception:
        # find the offending table(s) so that only they fail
        good: list[int] = []
        for i, p in enumerate(parts):
            try:
                ymdhm_to_ms(p["datetime"], where=f"{path}:/data/{ok[i]}")
                good.append(i)
            except Exception as exc:
                errors[ok[i]] = str(exc)
        parts = [parts[i] for i in good]
        ok = [ok[i] for i in good]
        scales = [scales[i] for i in good]
        if not parts:
            return _empty(errors)
        lengths = np.array([p.shape[0] for p in parts], dtype=np.int64)
        dt = ymdhm_to_ms(cat("datetime"), where=path)
    vol_scale = np.repeat(np.asarray(scales, dtype=np.float64), lengths)
    return Chunk(
        names=ok,
        lengths=lengths,
        datetime=dt,
        open=cat("openPrice") * 0.001,
        high=cat("highPrice") * 0.001,
        low=cat("lowPrice") * 0.001,
        close=cat("closePrice") * 0.001,
        volume=cat("transCount").astype(np.float64) * vol_scale,
        amount=cat("transAmount").astype(np.float64) * 1000.0,
        errors=errors,
    )


def _empty(errors: dict[str, str]) -> Chunk:
    e = np.empty(0, dtype=np.float64)
    return Chunk([], np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), e, e, e, e, e, e, errors)
