"""stock.db opens read-only through a proper SQLite URI, whatever characters its path holds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hikyuu_qlib.domain import DataFormatError, StockCode
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.hikyuu.bonds import read_zh_bond10

ODD_NAMES = ["a#b", "a?mode=rwc", "a%20b", "a b", "数据 é", "x#y?z%41&w"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_stock_db_under_an_odd_path(hikyuu_dir: Path, tmp_path: Path, name: str) -> None:
    root = tmp_path / name
    root.mkdir()
    for file in ("stock.db", "sh_day.h5"):
        shutil.copy(hikyuu_dir / file, root / file)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with HikyuuStore.open(root) as store:
        assert store.stocks(valid=None).height == 4729
        assert store.read_bars(StockCode.parse("SH600000")).height == 2836
    bonds = read_zh_bond10(root)
    assert bonds.height > 1000 and bonds["rate"].is_between(0, 0.2).all()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing created beside or inside


def test_an_unreadable_stock_db_is_reported_not_created(tmp_path: Path) -> None:
    root = tmp_path / "store #1"
    root.mkdir()
    (root / "stock.db").write_bytes(b"")  # empty: not a Hikyuu database
    with pytest.raises(DataFormatError, match="store #1"):
        HikyuuStore.open(root)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["stock.db", "store #1"]
