"""Columnar reads of many instruments × fields with Qlib's exact row semantics.

For each instrument, each field is read over the requested calendar index range. With membership spans
(a universe query), rows outside the instrument's spans are dropped, as Qlib's ``inst_calculator`` masks
them. Instruments that have no ``features/<code>`` folder, or no rows left, are absent from the result —
Qlib returns nothing for them too. NaN rows inside a bin (suspended days) are kept, as Qlib keeps them.

Integrity: an instrument whose folder exists but is damaged is an error, never data. Every failing
instrument is collected and :class:`LoadErrors` is raised with the per-code errors (nothing is dropped
silently); each error is a :class:`DataFormatError` naming the file and the field:

* a bin that is missing, unreadable or corrupt (see :mod:`.bins`), or a ``features/<code>`` that is a file;
* bins of one instrument that disagree on their calendar span (start index or length): Qlib's dump
  tools write every field of an instrument over the same days, so a shorter bin is truncated — Qlib
  itself would join the fields and serve NaN on the missing days;
* impossible values (see :func:`check_values`): a price ≤ 0 or above :data:`MAX_PRICE`, a negative
  volume, amount or vwap, a factor ≤ 0, or ±inf in any field.

The checks run on the values already read: one NaN-ignoring min and max per field over all the
instruments of a batch (per instrument for a single one); only when one is out of range are the
instruments scanned to name the damaged ones.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain import DataFormatError, InvalidInputError, LoadErrors
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.stores.qlib.bins import BinSlice, read_span

IntArray = npt.NDArray[np.int64]
Spans = Sequence[tuple[int, int]]
#: Fields holding prices: positive and at most MAX_PRICE where not NaN. (``vwap`` is only non-negative:
#: stores derive it from ``amount``, which some sources leave at 0 on days that traded.)
PRICE_FIELDS = frozenset({"open", "high", "low", "close"})
NON_NEGATIVE_FIELDS = frozenset({"volume", "amount", "vwap"})
POSITIVE_FIELDS = frozenset({"factor"})
MAX_PRICE = 1e7


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


def not_a_folder(root: Path, code: str, folder: str) -> DataFormatError | None:
    """The error for a ``features/<folder>`` that exists but is not a folder, or None (absent or a folder)."""
    path = root / "features" / folder.lower()
    if not path.exists() or path.is_dir():
        return None
    return DataFormatError(f"instrument {code}: {path} is not a folder (a file is in its place)")


def read_instrument(
    root: Path,
    target: Target,
    fields: Sequence[str],
    freq: str,
    calendar: npt.NDArray[np.datetime64],
    lo: int,
    hi: int,
    *,
    check: bool = True,
) -> tuple[IntArray, list[npt.NDArray[np.float32]]] | None:
    """Calendar indices and one float32 column per field for one instrument, or None when it has no rows.

    Raises :class:`DataFormatError` for a missing or corrupt bin, a folder that is a file, bins that
    disagree on their calendar span, and (unless ``check`` is false: the caller checks the values
    itself) values that cannot be (see :func:`check_values`).
    """
    if target.spans is not None:
        if not target.spans:
            return None
        lo = max(lo, min(a for a, _ in target.spans))
        hi = min(hi, max(b for _, b in target.spans))
        if lo > hi:
            return None
    n_calendar = len(calendar)
    spans: list[tuple[int, int]] = []
    slices: list[BinSlice] = []
    folder = f"{root}/features/{target.folder.lower()}"
    suffix = f".{freq.lower()}.bin"
    for field in fields:
        path = f"{folder}/{field.lower()}{suffix}"
        try:
            start, length, first, values = read_span(path, field, n_calendar, lo, hi)
        except FileNotFoundError:
            raise DataFormatError(
                f"instrument {target.code} has no field {field!r}: {path} is missing"
            ) from None
        except NotADirectoryError:
            raise DataFormatError(
                f"instrument {target.code}: {folder} is not a folder (a file is in its place)"
            ) from None
        spans.append((start, length))
        slices.append(BinSlice(first, values))
    if len(set(spans)) > 1:
        raise DataFormatError(_disagreement(target.code, folder, suffix, fields, spans))
    if not len(slices[0].values):
        return None
    first, last = slices[0].start, slices[0].end
    index = np.arange(first, last + 1, dtype=np.int64)
    columns = [s.values for s in slices]
    if check:
        check_values(folder, suffix, fields, columns, calendar, index)
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


def _disagreement(
    code: str, folder: str, suffix: str, fields: Sequence[str], spans: Sequence[tuple[int, int]]
) -> str:
    """The message for bins of one instrument that hold different calendar spans (the odd one named)."""
    common, _ = Counter(spans).most_common(1)[0]
    odd = next(i for i, s in enumerate(spans) if s != common)
    ref = fields[spans.index(common)]
    start, length = spans[odd]
    return (
        f"corrupt bin {folder}/{fields[odd].lower()}{suffix} (field {fields[odd]!r}): it holds {length} "
        f"values from calendar index {start}, but the {ref!r} bin of instrument {code} holds {common[1]} "
        f"from index {common[0]} (truncated or misaligned)"
    )


def values_ok(field: str, column: npt.NDArray[np.float32]) -> bool:
    """Whether every value of ``column`` may be a value of ``field`` (one NaN-ignoring min and max)."""
    if not len(column):
        return True
    low = float(np.fmin.reduce(column))
    if math.isnan(low):
        return True  # all NaN: a gap, not damage
    high = float(np.fmax.reduce(column))
    name = field.lower()
    if name in PRICE_FIELDS:
        return low > 0.0 and high <= MAX_PRICE
    if name in NON_NEGATIVE_FIELDS:
        return low >= 0.0 and high < math.inf
    if name in POSITIVE_FIELDS:
        return low > 0.0 and high < math.inf
    return low > -math.inf and high < math.inf


def check_values(
    folder: str,
    suffix: str,
    fields: Sequence[str],
    columns: Sequence[npt.NDArray[np.float32]],
    calendar: npt.NDArray[np.datetime64],
    index: IntArray,
) -> None:
    """Raise :class:`DataFormatError` on values no market produces (NaN is always allowed: a gap).

    Prices (open, high, low, close) must be in ``(0, MAX_PRICE]``; volume, amount and vwap must not be
    negative; factor must be positive; no field may be infinite. ``index`` holds the calendar index of
    each row. The error names the file, the field, the first bad value and its day.
    """
    for field, column in zip(fields, columns, strict=True):
        if values_ok(field, column):
            continue
        name = field.lower()
        with np.errstate(invalid="ignore"):
            if name in PRICE_FIELDS:
                valid = (column > 0.0) & (column <= MAX_PRICE)
                rule = f"a price must be positive and at most {MAX_PRICE:g}"
            elif name in NON_NEGATIVE_FIELDS:
                valid = (column >= 0.0) & np.isfinite(column)
                rule = f"{name} must be finite and not negative"
            elif name in POSITIVE_FIELDS:
                valid = (column > 0.0) & np.isfinite(column)
                rule = f"{name} must be finite and positive"
            else:
                valid = np.isfinite(column)
                rule = "values must be finite"
        at = int(np.flatnonzero(~valid & ~np.isnan(column))[0])
        raise DataFormatError(
            f"corrupt bin {folder}/{name}{suffix} (field {field!r}): value {float(column[at])!r} on "
            f"{_when(calendar, int(index[at]))} is impossible ({rule})"
        )


def _when(calendar: npt.NDArray[np.datetime64], i: int) -> str:
    moment = calendar[i]
    day = moment.astype("datetime64[D]")
    return str(day) if day == moment else str(moment.astype("datetime64[s]")).replace("T", " ")


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
    read: list[Target] = []
    lengths: list[int] = []
    indices: list[IntArray] = []
    columns: list[list[npt.NDArray[np.float32]]] = [[] for _ in names]
    errors: dict[str, BaseException] = {}
    if hi >= lo:
        for target in sorted(targets, key=lambda t: t.code):
            if target.folder.lower() not in folders:
                continue
            try:
                got = read_instrument(root, target, names, freq, calendar, lo, hi, check=False)
            except DataFormatError as exc:
                errors[target.code] = exc
                continue
            if got is None:
                continue
            index, values = got
            codes.append(target.code)
            read.append(target)
            lengths.append(len(index))
            indices.append(index)
            for bucket, column in zip(columns, values, strict=True):
                bucket.append(column)
    if not codes:
        if errors:
            raise LoadErrors(errors)
        return pl.DataFrame(schema=schema)
    position = np.concatenate(indices)
    merged = [np.concatenate(bucket) for bucket in columns]
    if not all(values_ok(name, column) for name, column in zip(names, merged, strict=True)):
        # the slow path, only when some value is out of range: find the instruments it belongs to
        bounds = np.cumsum([0, *lengths]).tolist()
        suffix = f".{freq.lower()}.bin"
        for k, target in enumerate(read):
            part = slice(bounds[k], bounds[k + 1])
            folder = f"{root}/features/{target.folder.lower()}"
            try:
                check_values(folder, suffix, names, [m[part] for m in merged], calendar, position[part])
            except DataFormatError as exc:
                errors[target.code] = exc
    if errors:
        raise LoadErrors(errors)
    data: dict[str, pl.Series] = {
        "code": pl.Series("code", codes, dtype=pl.String).gather(
            np.repeat(np.arange(len(codes), dtype=np.int64), lengths)
        ),
        "datetime": pl.Series("datetime", calendar.astype("datetime64[ms]").view(np.int64)[position]).cast(
            DATETIME
        ),
    }
    for name, column in zip(names, merged, strict=True):
        data[name] = pl.Series(name, column, dtype=pl.Float32)
    return pl.DataFrame(data)
