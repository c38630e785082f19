"""Whole-store loads through the decoded-column cache equal direct loads, and never serve stale data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

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


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-8])


def _rename_a_table(path: Path) -> None:
    path.write_text(path.read_text().replace("SH600000", "SH600001"))


def _swap_lengths(path: Path) -> None:
    lengths = np.load(path)
    np.save(path, lengths[::-1].copy())


DAMAGES = {
    "close.npy truncated": ("close.npy", _truncate),
    "names.json altered": ("names.json", _rename_a_table),
    "lengths.npy rewritten": ("lengths.npy", _swap_lengths),
    "manifest missing": ("manifest.json", Path.unlink),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_cache_is_rebuilt_not_served(hikyuu_dir: Path, tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "cache"
    direct = HikyuuStore.open(hikyuu_dir).read_all(adjust=Adjust.BACKWARD, workers=1)
    HikyuuStore.open(hikyuu_dir, cache_dir=cache).read_all(workers=1)
    (entry,) = (cache / "hikyuu-bulk").iterdir()
    name, spoil = DAMAGES[damage]
    spoil(entry / name)
    again = HikyuuStore.open(hikyuu_dir, cache_dir=cache).read_all(adjust=Adjust.BACKWARD, workers=1)
    assert again.equals(direct)
    (rebuilt,) = (cache / "hikyuu-bulk").iterdir()
    assert (rebuilt / "manifest.json").is_file()
    assert (
        HikyuuStore.open(hikyuu_dir, cache_dir=cache)
        .read_all(adjust=Adjust.BACKWARD, workers=1)
        .equals(direct)
    )
