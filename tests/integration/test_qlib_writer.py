"""QlibWriter: what it writes reads back identically through QlibStore and through pyqlib itself."""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.conftest import require

from hikyuu_qlib.domain import DateRange, InvalidInputError, KType, StockCode, StoreNotFoundError
from hikyuu_qlib.stores.qlib import QlibStore, QlibWriter

CODES = ["SH600000", "SH600036", "SZ000001", "SZ302132", "SH000300"]
FIELDS = ["open", "high", "low", "close", "volume", "factor", "change"]
WINDOW = DateRange.of("2012-01-01", "2013-12-31")


@pytest.fixture(scope="module")
def source(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


@pytest.fixture(scope="module")
def frames(source: QlibStore) -> pl.DataFrame:
    return source.features(CODES, FIELDS, WINDOW)


def _write(out: Path, source: QlibStore, frames: pl.DataFrame, *, append: bool = False) -> None:
    writer = QlibWriter(out, append=append)
    writer.write_calendar(frames["datetime"].unique())  # SH000300 trades every day
    for (code,), part in frames.group_by("code", maintain_order=True):
        writer.write_features(str(code), part)
    spans = frames.group_by("code").agg(
        pl.col("datetime").min().alias("start"), pl.col("datetime").max().alias("end")
    )
    writer.write_instruments("all", spans)


def test_write_then_read_back(tmp_path: Path, source: QlibStore, frames: pl.DataFrame) -> None:
    out = tmp_path / "q"
    _write(out, source, frames)
    store = QlibStore.open(out)
    assert (store.calendar() == source.calendar(dates=WINDOW)).all()
    back = store.features(CODES, FIELDS)
    assert back.equals(frames)
    assert back.filter(pl.col("code") == "SZ302132")["close"].is_nan().sum() == 1  # NaN row survives
    assert sorted(store.instruments("all")) == sorted(CODES)
    assert store.stocks(valid=None).height == len(CODES)


def test_append_equals_writing_at_once(tmp_path: Path, source: QlibStore, frames: pl.DataFrame) -> None:
    whole = tmp_path / "whole"
    _write(whole, source, frames)
    split = tmp_path / "split"
    cut = np.datetime64("2013-03-01")
    first = frames.filter(pl.col("datetime") < cut)
    second = frames.filter(pl.col("datetime") >= cut)
    writer = QlibWriter(split)
    writer.write_calendar(first["datetime"].unique())
    for (code,), part in first.group_by("code"):
        writer.write_features(str(code), part)
    spans = first.group_by("code").agg(
        pl.col("datetime").min().alias("start"), pl.col("datetime").max().alias("end")
    )
    writer.write_instruments("all", spans)
    old_bytes = (split / "features" / "sh600000" / "close.day.bin").read_bytes()
    # the second run re-sends the last week of history: it is ignored, not rewritten
    overlap = frames.filter(pl.col("datetime") >= np.datetime64("2013-02-20"))
    _write(split, source, overlap, append=True)
    for path in sorted(whole.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (split / path.relative_to(whole)).read_bytes(), path
    assert (split / "features" / "sh600000" / "close.day.bin").read_bytes().startswith(old_bytes)
    assert second.height > 0


def test_append_rules(tmp_path: Path, source: QlibStore, frames: pl.DataFrame) -> None:
    with pytest.raises(StoreNotFoundError, match=r"day\.txt"):
        QlibWriter(tmp_path / "none", append=True)
    out = tmp_path / "q"
    _write(out, source, frames.filter(pl.col("datetime") >= np.datetime64("2013-01-01")))
    writer = QlibWriter(out, append=True)
    with pytest.raises(InvalidInputError, match="shift existing bins"):
        writer.write_calendar(np.array(["2012-06-01"], dtype="datetime64[ms]"))
    with pytest.raises(InvalidInputError, match=r"SH600000.*not in the calendar"):
        writer.write_features(
            "SH600000", pl.DataFrame({"datetime": [dt.datetime(2014, 6, 3)], "close": [1.0]})
        )


def test_spans_are_merged_in_append_mode(tmp_path: Path, source: QlibStore) -> None:
    out = tmp_path / "q"
    cal = source.calendar(dates=WINDOW)
    writer = QlibWriter(out)
    writer.write_calendar(cal)
    writer.write_instruments(
        "demo", pl.DataFrame({"code": ["sh600000"], "start": [cal[0]], "end": [cal[10]]})
    )
    appender = QlibWriter(out, append=True)
    # meets the old span on the next trading day -> one span; a later one stays apart
    appender.write_instruments(
        "demo",
        pl.DataFrame(
            {"code": ["SH600000", "SH600000"], "start": [cal[11], cal[40]], "end": [cal[20], cal[50]]}
        ),
    )
    members = QlibStore.open(out).members("demo")
    assert members.rows() == [("SH600000", cal[0], cal[20]), ("SH600000", cal[40], cal[50])]


PYQLIB_READ = textwrap.dedent(
    """
    import sys
    import qlib
    from qlib.data import D
    provider, codes, fields, start, end, out = sys.argv[1:7]
    qlib.init(provider_uri=provider, region="cn", kernels=1)
    frame = D.features(codes.split(","), ["$" + f for f in fields.split(",")], start, end)
    frame.reset_index().to_parquet(out)
    """
)


def pyqlib_read(
    provider: Path, codes: list[str], fields: list[str], start: str, end: str, out: Path
) -> pl.DataFrame:
    """D.features over ``provider`` in a fresh interpreter (qlib.init is process-global)."""
    args = [str(provider), ",".join(codes), ",".join(fields), start, end, str(out)]
    done = subprocess.run(
        [sys.executable, "-c", PYQLIB_READ, *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pl.read_parquet(out)
    frame = frame.rename({c: c.lstrip("$") for c in frame.columns} | {"instrument": "code"})
    # pandas hands NaN to parquet as null: turn them back into the NaN pyqlib returned
    floats = [c for c in frame.columns if c not in {"code", "datetime"}]
    return frame.with_columns(pl.col("datetime").cast(pl.Datetime("ms")), pl.col(floats).fill_null(np.nan))


def test_pyqlib_reads_what_we_wrote(tmp_path: Path, source: QlibStore, frames: pl.DataFrame) -> None:
    require(importlib.util.find_spec("qlib") is not None, "pyqlib is not installed")
    out = tmp_path / "q"
    _write(out, source, frames)
    got = pyqlib_read(out, CODES, FIELDS, "2012-01-01", "2013-12-31", tmp_path / "r.parquet")
    assert got.columns == frames.columns
    assert got.equals(frames)


def test_intraday_frequency(tmp_path: Path) -> None:
    """A 1-minute provider dir: KType.MIN is served from calendars/1min.txt and *.1min.bin."""
    minutes = pl.datetime_range(
        dt.datetime(2024, 1, 2, 9, 31),
        dt.datetime(2024, 1, 2, 9, 40),
        interval="1m",
        time_unit="ms",
        eager=True,
    ).alias("datetime")
    bars = pl.DataFrame(
        {
            "datetime": minutes,
            "open": np.linspace(10, 11, 10),
            "high": np.linspace(10.1, 11.1, 10),
            "low": np.linspace(9.9, 10.9, 10),
            "close": np.linspace(10, 11, 10),
            "volume": np.full(10, 500.0),
            "factor": np.full(10, 2.0),
        }
    ).with_columns(
        pl.when(pl.col("datetime").dt.minute() == 35).then(np.nan).otherwise(pl.col("close")).alias("close")
    )
    for freq in ("day", "1min"):
        writer = QlibWriter(tmp_path, freq=freq)
        writer.write_calendar(minutes.dt.truncate("1d").unique() if freq == "day" else minutes)
    QlibWriter(tmp_path, freq="1min", append=True).write_features("SZ000001", bars)
    assert (tmp_path / "calendars" / "1min.txt").read_text().splitlines()[0] == "2024-01-02 09:31:00"
    store = QlibStore.open(tmp_path)
    periods = {k for k in KType if k.is_period_of_day}  # built from the day bars
    assert store.ktypes() == frozenset({KType.DAY, KType.MIN, *periods})
    got = store.read_bars(StockCode.parse("SZ000001"), ktype=KType.MIN)
    assert got.height == 9 and dt.datetime(2024, 1, 2, 9, 35) not in got["datetime"].to_list()
    np.testing.assert_allclose(
        got["close"].to_numpy(), bars.drop_nans("close")["close"].to_numpy() / 2.0, rtol=1e-6
    )
    np.testing.assert_allclose(got["volume"].to_numpy(), 1000.0)
    raw = store.features(["SZ000001"], ["close"], freq="1min")
    assert raw.height == 10 and raw["close"].is_nan().sum() == 1
