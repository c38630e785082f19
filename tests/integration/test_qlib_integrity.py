"""Damaged copies of the real Qlib store: every damage fails the damaged code, the same way on every path.

The paths: one code (``read_bars``), a batch of codes as bars (``read_many``: the error is in its errors,
the healthy code is served) and raw fields (``features``: :class:`LoadErrors` with the failing code only).
Each error is a :class:`DataFormatError` naming the file and the field. Also: universe names that would
reach outside ``instruments/`` are refused.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import DataFormatError, InvalidInputError, LoadErrors, NotFoundError, StockCode
from hikyuu_qlib.stores.qlib import QlibStore

HEALTHY, DAMAGED = "SH600000", "SH600036"
CODES = [StockCode.parse(HEALTHY), StockCode.parse(DAMAGED)]
FIELDS = ["open", "high", "low", "close", "volume", "factor", "change"]


@pytest.fixture()
def small(qlib_dir: Path, tmp_path: Path) -> Path:
    """A copy of the calendar, the instruments of two codes and their bins."""
    root = tmp_path / "qlib"
    (root / "calendars").mkdir(parents=True)
    (root / "instruments").mkdir()
    shutil.copy(qlib_dir / "calendars" / "day.txt", root / "calendars" / "day.txt")
    for name in ("all", "csi300"):
        lines = (qlib_dir / "instruments" / f"{name}.txt").read_text().splitlines()
        keep = [line for line in lines if line.split("\t")[0] in {HEALTHY, DAMAGED}]
        (root / "instruments" / f"{name}.txt").write_text("\n".join(keep) + "\n")
    for code in (HEALTHY, DAMAGED):
        shutil.copytree(qlib_dir / "features" / code.lower(), root / "features" / code.lower())
    return root


def _bin(root: Path, field: str, code: str = DAMAGED) -> Path:
    return root / "features" / code.lower() / f"{field}.day.bin"


def _set_value(root: Path, field: str, value: float, at: int = 100) -> Path:
    """Put ``value`` at the ``at``-th value of the damaged code's bin of ``field``."""
    path = _bin(root, field)
    data = np.fromfile(path, dtype="<f4")
    data[1 + at] = value
    data.tofile(path)
    return path


def _truncate(root: Path) -> Path:
    path = _bin(root, "close")
    path.write_bytes(path.read_bytes()[: -4 * 10])  # ten days short, on a 4-byte boundary
    return path


def _drop_factor(root: Path) -> Path:
    path = _bin(root, "factor")
    path.unlink()
    return path


def _folder_is_a_file(root: Path) -> Path:
    folder = root / "features" / DAMAGED.lower()
    shutil.rmtree(folder)
    folder.write_bytes(b"not a folder")
    return folder


# name -> (damage returning the damaged path, the field named in the error or None)
DAMAGES: dict[str, tuple[Callable[[Path], Path], str | None]] = {
    "truncated_bin": (_truncate, "close"),
    "missing_factor": (_drop_factor, "factor"),
    "price_zero": (lambda r: _set_value(r, "close", 0.0), "close"),
    "price_negative": (lambda r: _set_value(r, "open", -3.5), "open"),
    "price_too_big": (lambda r: _set_value(r, "high", 2e7), "high"),
    "price_inf": (lambda r: _set_value(r, "low", np.inf), "low"),
    "volume_inf": (lambda r: _set_value(r, "volume", np.inf), "volume"),
    "volume_negative": (lambda r: _set_value(r, "volume", -100.0), "volume"),
    "factor_inf": (lambda r: _set_value(r, "factor", np.inf), "factor"),
    "folder_is_a_file": (_folder_is_a_file, None),
}
PATHS = ("read_bars", "read_many", "features")


def _error_of(store: QlibStore, path: str) -> BaseException:
    """The error the damaged code gets on ``path``; the healthy code is still served."""
    if path == "read_bars":
        with pytest.raises(DataFormatError) as info:
            store.read_bars(CODES[1])
        assert store.read_bars(CODES[0]).height > 3000
        return info.value
    if path == "read_many":
        bars, errors = store.read_many(CODES)
        assert list(errors) == [DAMAGED]
        assert bars["code"].unique().to_list() == [HEALTHY] and bars.height > 3000
        return errors[DAMAGED]
    with pytest.raises(LoadErrors) as batch:
        store.features([HEALTHY, DAMAGED], FIELDS)
    assert list(batch.value.errors) == [DAMAGED]  # the healthy instrument is not reported
    assert store.features([HEALTHY], FIELDS).height > 3000
    return batch.value.errors[DAMAGED]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damage_fails_that_code_naming_file_and_field(small: Path, damage: str, path: str) -> None:
    hurt, field = DAMAGES[damage]
    where = hurt(small)
    error = _error_of(QlibStore.open(small), path)
    assert isinstance(error, DataFormatError), repr(error)
    assert str(where) in str(error)
    if field is not None:
        assert f"'{field}'" in str(error)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_every_path_gives_the_same_answer(small: Path, damage: str) -> None:
    DAMAGES[damage][0](small)
    store = QlibStore.open(small)
    messages = {path: str(_error_of(store, path)) for path in PATHS}
    assert len(set(messages.values())) == 1, messages


def test_a_field_bars_do_not_read_fails_where_it_is_read(small: Path) -> None:
    """``$change`` is not part of bars: damage there fails the reads that ask for it, never silently."""
    path = _set_value(small, "change", -np.inf)
    store = QlibStore.open(small, change_unit="percent")
    assert store.read_bars(CODES[1]).height > 3000
    for as_stored in (False, True):
        with pytest.raises(LoadErrors) as batch:
            store.features([HEALTHY, DAMAGED], ["close", "change"], as_stored=as_stored)
        assert list(batch.value.errors) == [DAMAGED]
        assert str(path) in str(batch.value.errors[DAMAGED]) and "'change'" in str(
            batch.value.errors[DAMAGED]
        )


def test_value_errors_say_which_day_and_which_rule(small: Path) -> None:
    path = _set_value(small, "volume", -100.0, at=0)
    store = QlibStore.open(small)
    first_day = store.calendar()[int(np.fromfile(path, dtype="<f4", count=1)[0])]
    with pytest.raises(DataFormatError, match=rf"-100\.0 on {first_day:%Y-%m-%d} .*not negative"):
        store.read_bars(CODES[1])


def test_nan_is_a_gap_not_damage(small: Path) -> None:
    for field in ("open", "close", "volume", "factor", "change"):
        _set_value(small, field, np.nan)
    store = QlibStore.open(small)
    full = store.features([DAMAGED], FIELDS)
    assert full.height > 3000 and full["close"].is_nan().sum() == 1
    assert store.read_bars(CODES[1]).height == full.height - 1  # the NaN close day is not a bar


def test_a_bin_past_the_others_fails_too(small: Path) -> None:
    """Not only a shorter bin: one that starts later than the others is misaligned."""
    path = _bin(small, "volume")
    data = np.fromfile(path, dtype="<f4")
    np.concatenate([[data[0] + 5], data[6:]]).astype("<f4").tofile(path)  # same end, five days later start
    store = QlibStore.open(small)
    with pytest.raises(DataFormatError, match="'volume'") as info:
        store.read_bars(CODES[1])
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b"2020-01-02\nnot a date\n", "not a date"),
        (b"\xff\xfe\x00", "cannot read calendar"),
    ],
)
def test_empty_or_unreadable_calendar_fails_every_path(small: Path, content: bytes, message: str) -> None:
    calendar = small / "calendars" / "day.txt"
    calendar.write_bytes(content)
    store = QlibStore.open(small)
    with pytest.raises(DataFormatError, match=message) as single:
        store.read_bars(CODES[0])
    assert str(calendar) in str(single.value)
    bars, errors = store.read_many(CODES)
    assert bars.height == 0 and sorted(errors) == [HEALTHY, DAMAGED]
    assert all(isinstance(e, DataFormatError) and str(calendar) in str(e) for e in errors.values())
    assert str(errors[HEALTHY]) == str(single.value)
    with pytest.raises(DataFormatError) as batch:
        store.features("all", ["close"])
    assert str(batch.value) == str(single.value)


def test_store_without_any_factor_serves_its_prices_as_unadjusted(
    small: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The documented case: no instrument has a factor bin, so the prices are taken as they are."""
    for code in (HEALTHY, DAMAGED):
        _bin(small, "factor", code).unlink()
    store = QlibStore.open(small)
    raw = store.features([HEALTHY], ["close"]).filter(~pl.col("close").is_nan())
    with caplog.at_level(logging.INFO, logger="hikyuu_qlib.stores.qlib.store"):
        bars = store.read_bars(CODES[0])
        bars_many, errors = store.read_many(CODES)
    assert not errors and bars["factor"].unique().to_list() == [1.0]
    np.testing.assert_allclose(bars["close"].to_numpy(), raw["close"].to_numpy().astype(np.float64))
    assert bars_many.filter(pl.col("code") == HEALTHY).equals(bars)
    said = [r.getMessage() for r in caplog.records if "factor" in r.getMessage()]
    assert len(said) == 1 and str(small) in said[0] and "unadjusted" in said[0]


# -- universe names are names (point 8) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../secret", "..", "../instruments/csi300", "sub/csi300", "sub\\csi300", "/etc/passwd", "csi..300", ""],
)
def test_universe_names_that_leave_instruments_are_refused(small: Path, name: str) -> None:
    (small / "secret.txt").write_text(f"{HEALTHY}\t2010-01-04\t2026-05-08\n")
    store = QlibStore.open(small)
    for call in (
        lambda: store.members(name),
        lambda: store.instruments(name),
        lambda: store.features(name, ["close"]),
    ):
        with pytest.raises(InvalidInputError, match="universe name"):
            call()


def test_plain_universe_names_and_codes_still_work(small: Path) -> None:
    store = QlibStore.open(small)
    assert store.members(" CSI300 ")["code"].unique().sort().to_list() == [HEALTHY, DAMAGED]
    assert store.features("csi300", ["close"]).height > 1000
    assert store.features("600000.SH", ["close"])["code"].unique().to_list() == [HEALTHY]
    with pytest.raises(NotFoundError, match="csi999"):
        store.members("csi999")
