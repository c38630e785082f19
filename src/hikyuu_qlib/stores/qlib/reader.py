"""Columnar reads of many instruments × fields with Qlib's exact row semantics.

For each instrument, each field is read over the requested calendar index range; the instrument's rows
are the union of the calendar indices its fields hold (a field shorter than the others is NaN there),
exactly as Qlib joins its per-field series. With membership spans (a universe query), rows outside the
instrument's spans are dropped, as Qlib's ``inst_calculator`` masks them. Instruments that have no
``features/<code>`` folder, or no rows left, are absent from the result — Qlib returns nothing for them
too. NaN rows inside a bin (suspended days) are kept, as Qlib keeps them.

An instrument whose folder exists but whose bin is missing or corrupt is an error: every failing
instrument is collected and :class:`LoadErrors` is raised with the per-code errors (nothing is dropped
silently).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain import DataFormatError, InvalidInputError, LoadErrors
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.stores.qlib.bins import F32, BinSlice, read_span

IntArray = npt.NDArray[np.int64]
Spans = Sequence[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Target:
    """One instrument to read: canonical code, folder under ``features``, optional index spans."""

    code: str
    folder: str
    spans: Spans | None = None


def field_name(field: str) -> str:
    """``$close`` or ``close`` -> ``close``."""
    name = field.strip()
    name = name.removeprefix("$")
    if not name or not name.replace("_", "").isalnum():
        raise InvalidInputError(f"invalid field {field!r}: expected a raw field such as $close or close")
    return name


def feature_folders(root: Path) -> set[str]:
    """Names of the instrument folders under ``features`` (lower case, as Qlib writes them)."""
    try:
        return set(os.listdir(root / "features"))
    except FileNotFoundError:
        return set()


def read_instrument(
    root: Path, target: Target, fields: Sequence[str], freq: str, n_calendar: int, lo: int, hi: int
) -> tuple[IntArray, list[npt.NDArray[np.float32]]] | None:
    """Calendar indices and one float32 column per field for one instrument, or None when it has no rows."""
    if target.spans is not None:
        if not target.spans:
            return None
        lo = max(lo, min(a for a, _ in target.spans))
        hi = min(hi, max(b for _, b in target.spans))
        if lo > hi:
            return None
    slices: list[BinSlice] = []
    folder = f"{root}/features/{target.folder.lower()}/"
    suffix = f".{freq.lower()}.bin"
    for field in fields:
        path = folder + field.lower() + suffix
        try:
            slices.append(BinSlice(*read_span(path, field, n_calendar, lo, hi)))
        except FileNotFoundError:
            raise DataFormatError(
                f"instrument {target.code} has no field {field!r}: {path} is missing"
            ) from None
    held = [s for s in slices if len(s.values)]
    if not held:
        return None
    first = min(s.start for s in held)
    last = max(s.end for s in held)
    if len(held) == len(slices) and all(s.start == first and s.end == last for s in held):
        index = np.arange(first, last + 1, dtype=np.int64)
        columns = [s.values for s in slices]
    else:
        size = last - first + 1
        covered = np.zeros(size, dtype=bool)
        columns = []
        for s in slices:
            column = np.full(size, np.nan, dtype=F32)
            if len(s.values):
                column[s.start - first : s.end - first + 1] = s.values
                covered[s.start - first : s.end - first + 1] = True
            columns.append(column)
        index = np.arange(first, last + 1, dtype=np.int64)
        if not covered.all():
            index = index[covered]
            columns = [c[covered] for c in columns]
    if target.spans is not None and len(target.spans) > 1:
        # one span needs no mask: [lo, hi] was already clipped to it
        keep = np.zeros(len(index), dtype=bool)
        for begin, end in target.spans:
            keep |= (index >= begin) & (index <= end)
        if not keep.all():
            index = index[keep]
            columns = [c[keep] for c in columns]
    if len(index) == 0:
        return None
    return index, columns


def read_features(
    root: Path,
    calendar: npt.NDArray[np.datetime64],
    freq: str,
    targets: Sequence[Target],
    fields: Sequence[str],
    lo: int,
    hi: int,
) -> pl.DataFrame:
    """One frame ``code, datetime, <field>…`` (Float32) for all targets, sorted by (code, datetime)."""
    names = [field_name(f) for f in fields]
    schema: dict[str, pl.DataType] = {"code": pl.String(), "datetime": DATETIME}
    schema.update({n: pl.Float32() for n in names})
    if len(set(names)) != len(names):
        raise InvalidInputError(f"duplicate fields in {list(fields)!r}")
    folders = feature_folders(root)
    codes: list[str] = []
    lengths: list[int] = []
    indices: list[IntArray] = []
    columns: list[list[npt.NDArray[np.float32]]] = [[] for _ in names]
    errors: dict[str, BaseException] = {}
    if hi >= lo:
        for target in sorted(targets, key=lambda t: t.code):
            if target.folder.lower() not in folders:
                continue
            try:
                got = read_instrument(root, target, names, freq, len(calendar), lo, hi)
            except DataFormatError as exc:
                errors[target.code] = exc
                continue
            if got is None:
                continue
            index, values = got
            codes.append(target.code)
            lengths.append(len(index))
            indices.append(index)
            for bucket, column in zip(columns, values, strict=True):
                bucket.append(column)
    if errors:
        raise LoadErrors(errors)
    if not codes:
        return pl.DataFrame(schema=schema)
    position = np.concatenate(indices)
    data: dict[str, pl.Series] = {
        "code": pl.Series("code", codes, dtype=pl.String).gather(
            np.repeat(np.arange(len(codes), dtype=np.int64), lengths)
        ),
        "datetime": pl.Series("datetime", calendar.astype("datetime64[ms]").view(np.int64)[position]).cast(
            DATETIME
        ),
    }
    for name, bucket in zip(names, columns, strict=True):
        data[name] = pl.Series(name, np.concatenate(bucket), dtype=pl.Float32)
    return pl.DataFrame(data)
