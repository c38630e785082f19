"""Bin and calendar primitives of the Qlib store: layout, slicing, validation, append."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from hikyuu_qlib.domain import DataFormatError, DateRange
from hikyuu_qlib.stores.qlib.bins import append_bin, encode_bin, read_bin, write_bin
from hikyuu_qlib.stores.qlib.calendar import format_calendar, read_calendar


def test_layout_is_qlibs(tmp_path: Path) -> None:
    path = tmp_path / "close.day.bin"
    write_bin(path, 3, [1.5, np.nan, 2.5])
    raw = np.fromfile(path, dtype="<f4")
    assert raw[0] == 3.0 and raw[1] == 1.5 and np.isnan(raw[2]) and raw[3] == 2.5
    assert path.read_bytes() == encode_bin(3, np.array([1.5, np.nan, 2.5]))


def test_read_slices_by_calendar_index(tmp_path: Path) -> None:
    path = tmp_path / "x.day.bin"
    write_bin(path, 10, np.arange(20, dtype=np.float32))  # indices 10..29
    whole = read_bin(path, "x", 40)
    assert whole.start == 10 and whole.end == 29 and whole.values[0] == 0
    part = read_bin(path, "x", 40, 12, 14)
    assert part.start == 12 and part.values.tolist() == [2.0, 3.0, 4.0]
    assert read_bin(path, "x", 40, 0, 10).values.tolist() == [0.0]
    assert len(read_bin(path, "x", 40, 30, 39).values) == 0
    assert len(read_bin(path, "x", 40, 0, 9).values) == 0
    # far-from-start slices take the two-read path and give the same answer
    far = tmp_path / "far.day.bin"
    write_bin(far, 0, np.arange(40_000, dtype=np.float32))
    assert read_bin(far, "far", 40_000, 30_000, 30_002).values.tolist() == [30_000.0, 30_001.0, 30_002.0]


@pytest.mark.parametrize(
    ("data", "n_calendar", "message"),
    [
        (b"", 10, "size 0 bytes"),
        (b"\x00\x00", 10, "size 2 bytes"),
        (encode_bin(0, [1.0])[:-1], 10, "size 7 bytes"),
        (np.array([np.inf, 1.0], "<f4").tobytes(), 10, "not a non-negative integer"),
        (np.array([1.5, 1.0], "<f4").tobytes(), 10, "not a non-negative integer"),
        (np.array([-1.0, 1.0], "<f4").tobytes(), 10, "not a non-negative integer"),
        (encode_bin(10, [1.0]), 10, "beyond the calendar"),
        (encode_bin(8, [1.0, 2.0, 3.0]), 10, "run past the calendar"),
    ],
)
def test_bad_bins_raise_naming_file_and_field(
    tmp_path: Path, data: bytes, n_calendar: int, message: str
) -> None:
    path = tmp_path / "open.day.bin"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=message) as info:
        read_bin(path, "open", n_calendar)
    assert str(path) in str(info.value) and "'open'" in str(info.value)


def test_header_only_bin_is_empty_not_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "v.day.bin"
    write_bin(path, 5, [])
    assert len(read_bin(path, "v", 5).values) == 0


def test_append_keeps_history_and_fills_gaps(tmp_path: Path) -> None:
    path = tmp_path / "c.day.bin"
    write_bin(path, 2, [1.0, 2.0])  # indices 2, 3
    before = path.read_bytes()
    added = append_bin(path, "c", 10, 3, np.array([9.0, 5.0, 6.0], dtype=np.float32))
    assert added == 2
    assert np.fromfile(path, "<f4").tolist() == [2.0, 1.0, 2.0, 5.0, 6.0]
    added = append_bin(path, "c", 10, 8, np.array([8.0], dtype=np.float32))
    got = np.fromfile(path, "<f4")
    assert added == 1 and got[:5].tolist() == [2.0, 1.0, 2.0, 5.0, 6.0] and np.isnan(got[5:7]).all()
    assert got[-1] == 8.0 and path.read_bytes().startswith(before)
    # values the file already holds are not rewritten
    assert append_bin(path, "c", 10, 2, np.array([7.0, 7.0], dtype=np.float32)) == 0


def test_calendar_round_trip_and_locate(tmp_path: Path) -> None:
    days = np.array(["2020-01-02", "2020-01-03", "2020-01-06"], dtype="datetime64[ms]")
    path = tmp_path / "day.txt"
    path.write_bytes(format_calendar(days, "day"))
    assert path.read_text() == "2020-01-02\n2020-01-03\n2020-01-06\n"
    assert (read_calendar(path) == days).all()
    # Qlib's locate_index: the start rounds up to the next trading day, the end down to the previous one
    assert DateRange.of("2020-01-04", "2020-01-06").calendar_slice(days) == slice(2, 3)
    assert DateRange.of("2020-01-03", "2020-01-05").calendar_slice(days) == slice(1, 2)
    assert DateRange.of("2020-01-04", "2020-01-05").calendar_slice(days) == slice(2, 2)  # no trading day
    minutes = np.array([dt.datetime(2020, 1, 2, 9, 31)], dtype="datetime64[ms]")
    assert format_calendar(minutes, "1min") == b"2020-01-02 09:31:00\n"


def test_bad_calendars(tmp_path: Path) -> None:
    path = tmp_path / "day.txt"
    path.write_text("2020-01-02\n2020-01-01\n")
    with pytest.raises(DataFormatError, match="not strictly ascending at line 2"):
        read_calendar(path)
    path.write_text("2020-01-02\nyesterday\n")
    with pytest.raises(DataFormatError, match="not a date"):
        read_calendar(path)
