"""Whole-store loads through the decoded-column cache equal direct loads, and never serve stale data."""

from __future__ import annotations

import shutil
from pathlib import Path

from hikyuu_qlib.domain import Adjust
from hikyuu_qlib.stores.hikyuu import HikyuuStore


def test_cached_read_all_equals_direct(hikyuu_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    direct = HikyuuStore.open(hikyuu_dir).read_all(adjust=Adjust.FORWARD, workers=1)
    first = HikyuuStore.open(hikyuu_dir, cache_dir=cache).read_all(adjust=Adjust.FORWARD, workers=1)
    entries = list((cache / "hikyuu-bulk").iterdir())
    assert len(entries) == 1 and (entries[0] / "close.npy").is_file()
    second = HikyuuStore.open(hikyuu_dir, cache_dir=cache).read_all(adjust=Adjust.FORWARD, workers=1)
    assert first.equals(direct) and second.equals(direct)
    raw = HikyuuStore.open(hikyuu_dir, cache_dir=cache).read_all(workers=1)
    assert raw.equals(HikyuuStore.open(hikyuu_dir).read_all(workers=1))


def test_a_changed_store_is_not_served_from_the_cache(hikyuu_dir: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    for name in ("stock.db", "sh_day.h5"):
        shutil.copy(hikyuu_dir / name, store_dir / name)
    cache = tmp_path / "cache"
    before = HikyuuStore.open(store_dir, cache_dir=cache).read_all(workers=1)
    shutil.copy(hikyuu_dir / "sz_day.h5", store_dir / "sz_day.h5")  # the store gains a market
    after = HikyuuStore.open(store_dir, cache_dir=cache).read_all(workers=1)
    assert set(after["code"].unique()) > set(before["code"].unique())
    assert len(list((cache / "hikyuu-bulk").iterdir())) == 2
