"""Instruments files: parsing, rendering and span merging."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import DataFormatError
from hikyuu_qlib.stores.qlib.instruments import canonical, format_instruments, merge_spans, read_instruments


def test_read_canonicalises_codes_and_keeps_spans(tmp_path: Path) -> None:
    path = tmp_path / "demo.txt"
    path.write_text(
        "sh600000\t2010-01-04\t2011-12-30\nSH600000\t2013-01-04\t2020-12-31\nSZ000001\t2010-01-04\t2020-12-31\n"
    )
    frame = read_instruments(path)
    assert frame["code"].to_list() == ["SH600000", "SH600000", "SZ000001"]
    assert frame["name"].to_list()[0] == "sh600000"
    assert frame["start"].dtype == pl.Datetime("ms") and frame["end"][1] == dt.datetime(2020, 12, 31)
    assert canonical("000300.SH") == "SH000300" and canonical("weird") == "WEIRD"


def test_bad_dates_raise_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("SH600000\t2010-01-04\tsoon\n")
    with pytest.raises(DataFormatError, match=r"bad\.txt"):
        read_instruments(path)


def test_format_is_qlibs_layout() -> None:
    spans = pl.DataFrame(
        {
            "code": ["SZ000001", "SH600000"],
            "start": [dt.datetime(2010, 1, 4)] * 2,
            "end": [dt.datetime(2020, 12, 31)] * 2,
        }
    )
    assert (
        format_instruments(spans) == b"SH600000\t2010-01-04\t2020-12-31\nSZ000001\t2010-01-04\t2020-12-31\n"
    )


def test_merge_joins_overlapping_and_consecutive_spans() -> None:
    cal = np.array(
        ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07", "2020-01-08"], dtype="datetime64[ms]"
    )
    d = [dt.datetime(2020, 1, day) for day in (2, 3, 6, 7, 8)]
    spans = pl.DataFrame(
        {
            "code": ["A", "A", "A", "B", "B"],
            # A: 2..3 and 6..6 meet across the weekend -> one span; B: 2..2 and 7..8 stay apart
            "start": [d[0], d[2], d[1], d[0], d[3]],
            "end": [d[1], d[2], d[1], d[0], d[4]],
        }
    ).cast({"start": pl.Datetime("ms"), "end": pl.Datetime("ms")})
    merged = merge_spans(spans, cal)
    assert merged.rows() == [("A", d[0], d[2]), ("B", d[0], d[0]), ("B", d[3], d[4])]
