"""QlibWriter: write a Qlib provider directory (calendar, instruments files, feature bins).

Every file is replaced atomically (temp file + rename), so a concurrent reader sees either the old or
the new version of a file. Write the calendar first: bins are laid out against it.

Append mode (``append=True``) extends an existing directory without rewriting history:

* the calendar is merged with the new datetimes, which must all come after its last entry (or already be
  in it) — inserting a date in the middle would shift every existing bin, so it is refused;
* bins are extended: values at calendar indices a bin already holds are left as they are (the new ones
  are ignored), a gap between the old end and the new values is NaN;
* instruments spans are merged per code (overlapping spans, or spans on consecutive trading days, join).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain import InvalidInputError, StockCode, StoreNotFoundError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.stores.qlib.bins import F32, append_bin, bin_path, write_bin
from hikyuu_qlib.stores.qlib.calendar import calendar_path, read_calendar, write_calendar
from hikyuu_qlib.stores.qlib.instruments import (
    instruments_dir,
    merge_spans,
    read_instruments,
    write_instruments,
)

log = logging.getLogger(__name__)
DatetimeArray = npt.NDArray[np.datetime64]


def _as_datetimes(values: pl.Series | npt.ArrayLike) -> DatetimeArray:
    if isinstance(values, pl.Series):
        return values.cast(DATETIME).to_numpy().astype("datetime64[ms]")
    return np.asarray(values, dtype="datetime64[ms]")


class QlibWriter:
    """Writes one frequency of a Qlib provider directory at ``out_dir``."""

    def __init__(self, out_dir: Path | str, *, freq: str = "day", append: bool = False) -> None:
        self._root = Path(out_dir).expanduser()
        self._freq = freq.lower()
        self._append = append
        self._calendar: DatetimeArray = np.empty(0, dtype="datetime64[ms]")
        if append:
            path = calendar_path(self._root, self._freq)
            if not path.is_file():
                raise StoreNotFoundError(f"cannot append to {self._root}: {path} is missing")
            self._calendar = read_calendar(path)

    @property
    def out_dir(self) -> Path:
        return self._root

    @property
    def calendar(self) -> DatetimeArray:
        return self._calendar

    def write_calendar(self, dates: pl.Series | npt.ArrayLike) -> None:
        """Set the calendar (write mode) or extend it (append mode) and write ``calendars/<freq>.txt``."""
        new = np.unique(_as_datetimes(dates))
        if np.isnat(new).any():
            raise InvalidInputError("calendar datetimes must not be null")
        if self._append and len(self._calendar):
            last = self._calendar[-1]
            inserted = new[(new < last) & ~np.isin(new, self._calendar)]
            if len(inserted):
                raise InvalidInputError(
                    f"cannot append to the calendar of {self._root}: {len(inserted)} datetime(s) such as "
                    f"{inserted[0]} fall before its last entry {last} and would shift existing bins"
                )
            new = np.concatenate([self._calendar, new[new > last]])
        self._calendar = new
        write_calendar(calendar_path(self._root, self._freq), new, self._freq)

    def write_instruments(self, name: str, spans: pl.DataFrame) -> None:
        """Write ``instruments/<name>.txt`` from spans ``code, start, end``.

        Spans of one code that overlap or meet are joined; in append mode the file's spans are merged in.
        """
        missing = {"code", "start", "end"} - set(spans.columns)
        if missing:
            raise InvalidInputError(f"instruments spans for {name!r} lack column(s) {sorted(missing)}")
        codes = [str(StockCode.parse(c)) for c in spans["code"].to_list()]
        frame = pl.DataFrame(
            {
                "code": pl.Series(codes, dtype=pl.String),
                "start": spans["start"].cast(DATETIME),
                "end": spans["end"].cast(DATETIME),
            }
        )
        if frame.filter(pl.col("start") > pl.col("end")).height:
            raise InvalidInputError(f"instruments spans for {name!r} have a start after their end")
        path = instruments_dir(self._root) / f"{name.lower()}.txt"
        if self._append and path.is_file():
            old = read_instruments(path).select(["code", "start", "end"])
            frame = pl.concat([old, frame])
        write_instruments(path, merge_spans(frame, self._calendar))

    def write_features(self, code: StockCode | str, frame: pl.DataFrame) -> int:
        """Write (or extend) one bin per float column of ``frame`` for ``code``; returns rows placed.

        ``frame`` has a ``datetime`` column on this writer's calendar; every other numeric column
        (``code`` is ignored) is a field. Nulls are written as NaN.
        """
        code = StockCode.parse(code)
        if "datetime" not in frame.columns:
            raise InvalidInputError(f"features of {code} need a 'datetime' column")
        fields = [c for c in frame.columns if c not in {"code", "datetime"}]
        bad = [c for c in fields if not frame[c].dtype.is_numeric()]
        if bad:
            raise InvalidInputError(f"features of {code}: column(s) {bad} are not numeric")
        if frame.height == 0 or not fields:
            return 0
        frame = frame.sort("datetime")
        when = _as_datetimes(frame["datetime"])
        index = np.searchsorted(self._calendar, when)
        clipped = np.minimum(index, max(len(self._calendar) - 1, 0))
        off = (index >= len(self._calendar)) | (self._calendar[clipped] != when)
        if off.any():
            raise InvalidInputError(
                f"features of {code}: {int(off.sum())} datetime(s) such as {when[np.flatnonzero(off)[0]]} "
                f"are not in the calendar of {self._root}; write the calendar first"
            )
        if len(index) > 1 and (np.diff(index) == 0).any():
            raise InvalidInputError(f"features of {code}: duplicate datetimes")
        start = int(index[0])
        size = int(index[-1]) - start + 1
        positions = index - start
        for name in fields:
            values = np.full(size, np.nan, dtype=F32)
            values[positions] = frame[name].cast(pl.Float32).fill_null(np.nan).to_numpy()
            path = bin_path(self._root, code.qlib_folder, name, self._freq)
            if self._append and path.is_file():
                append_bin(path, name, len(self._calendar), start, values)
            else:
                write_bin(path, start, values)
        return frame.height
