"""Qlib calendars: ``calendars/<freq>.txt``, one ascending trading datetime a line.

Frequencies are named as Qlib names them (``day``, ``1min``, ``5min`` …); :data:`FREQ_OF` maps the
platform's :class:`~hikyuu_qlib.domain.KType` onto them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from hikyuu_qlib.domain import DataFormatError, KType, UnsupportedKTypeError
from hikyuu_qlib.stores.qlib._io import write_atomic

DatetimeArray = npt.NDArray[np.datetime64]

FREQ_OF: dict[KType, str] = {
    KType.DAY: "day",
    KType.WEEK: "week",
    KType.MONTH: "month",
    KType.MIN: "1min",
    KType.MIN5: "5min",
    KType.MIN15: "15min",
    KType.MIN30: "30min",
    KType.MIN60: "60min",
}
KTYPE_OF: dict[str, KType] = {freq: ktype for ktype, freq in FREQ_OF.items()}


def freq_of(ktype: KType) -> str:
    """The Qlib frequency name of a ktype; :class:`UnsupportedKTypeError` when Qlib has none."""
    try:
        return FREQ_OF[ktype]
    except KeyError:
        raise UnsupportedKTypeError(f"ktype {ktype.value!r} has no Qlib frequency") from None


def calendar_path(root: Path, freq: str) -> Path:
    return root / "calendars" / f"{freq.lower()}.txt"


def read_calendar(path: Path) -> DatetimeArray:
    """Parse a calendar file into ``datetime64[ms]``; corrupt or unsorted files raise DataFormatError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"cannot read calendar {path}: {exc}") from exc
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    try:
        values = np.array(lines, dtype="datetime64[ms]")
    except ValueError as exc:
        raise DataFormatError(f"calendar {path} has a line that is not a date: {exc}") from exc
    if values.size > 1:
        steps = np.diff(values.astype(np.int64))
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise DataFormatError(
                f"calendar {path} is not strictly ascending at line {i + 1} "
                f"({lines[i]!r} after {lines[i - 1]!r})"
            )
    return values


def format_calendar(values: DatetimeArray, freq: str) -> bytes:
    """Render a calendar as Qlib writes it: dates for day-or-longer, ``YYYY-MM-DD HH:MM:SS`` intraday."""
    if freq in {"day", "week", "month"}:
        text = np.datetime_as_string(values.astype("datetime64[D]"), unit="D")
    else:
        text = np.char.replace(np.datetime_as_string(values.astype("datetime64[s]"), unit="s"), "T", " ")
    return ("\n".join(text.tolist()) + ("\n" if len(text) else "")).encode()


def write_calendar(path: Path, values: DatetimeArray, freq: str) -> None:
    write_atomic(path, format_calendar(values, freq))
