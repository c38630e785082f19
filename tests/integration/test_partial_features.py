"""A corrupt code fails that code, not the batch: partial features and predictions on a copy of the shared
Qlib store with one bin truncated."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from tests.cache_support import disk_cache, entries

from hikyuu_qlib.domain import DataFormatError, DateRange, LoadErrors
from hikyuu_qlib.factors.pipeline import compute_features, compute_features_partial
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.stores.qlib import QlibStore

CODES = ["SH600000", "SH600004", "SH600009", "SH600010"]
DAMAGED = "SH600004"
DATES = DateRange.of("2021-01-04", "2021-03-31")


@pytest.fixture
def store(qlib_dir: Path, tmp_path: Path) -> QlibStore:
    root = tmp_path / "qlib"
    (root / "instruments").mkdir(parents=True)
    shutil.copytree(qlib_dir / "calendars", root / "calendars")
    for code in CODES:
        shutil.copytree(qlib_dir / "features" / code.lower(), root / "features" / code.lower())
    (root / "instruments" / "all.txt").write_text("".join(f"{c}\t2010-01-04\t2026-05-08\n" for c in CODES))
    path = root / "features" / DAMAGED.lower() / "close.day.bin"
    os.truncate(path, path.stat().st_size - 2)
    return QlibStore.open(root)


def test_the_others_are_computed_exactly_as_on_their_own(store: QlibStore, tmp_path: Path) -> None:
    universe = Universe.from_codes(CODES)
    with pytest.raises(LoadErrors) as strict:
        compute_features(store, universe, DATES, label=False)
    assert set(strict.value.errors) == {DAMAGED}
    cache = disk_cache(tmp_path / "cache")
    partial = compute_features_partial(store, universe, DATES, label=False, cache=cache)
    assert set(partial.errors) == {DAMAGED} and isinstance(partial.errors[DAMAGED], DataFormatError)
    assert "close.day.bin" in str(partial.errors[DAMAGED])
    healthy = [c for c in CODES if c != DAMAGED]
    alone = compute_features(store, Universe.from_codes(healthy), DATES, label=False)
    assert sorted(partial.frame["code"].unique()) == healthy
    order = ["code", "datetime"]
    assert_frame_equal(partial.frame.sort(order), alone.sort(order))
    assert not entries(tmp_path / "cache")  # a partial result is never cached


def test_every_code_failing_raises(store: QlibStore) -> None:
    with pytest.raises(LoadErrors) as failed:
        compute_features_partial(store, Universe.from_codes([DAMAGED]), DATES, label=False)
    assert set(failed.value.errors) == {DAMAGED}


def test_a_healthy_batch_is_cached(store: QlibStore, tmp_path: Path) -> None:
    cache = disk_cache(tmp_path / "cache")
    universe = Universe.from_codes(["SH600000", "SH600009"])
    first = compute_features_partial(store, universe, DATES, label=False, cache=cache)
    assert first.errors == {} and len(entries(tmp_path / "cache")) == 1
    assert_frame_equal(first.frame, pl.DataFrame(first.raise_for_errors()))
