"""Hikyuu data store adapter: HDF5 K-line files plus the stock.db base-info database.

``HikyuuStore`` reads a store (``read_bars``, ``read_all`` for whole-market loads), ``HikyuuWriter``
writes one, ``adjust_bars`` is Hikyuu's forward/backward price adjustment on any bars frame.

The names resolve on first use, so that importing one module of the adapter (the adjustment, say)
does not pay for PyTables and the store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hikyuu_qlib.stores.hikyuu.adjust import adjust_bars
    from hikyuu_qlib.stores.hikyuu.store import HikyuuStore
    from hikyuu_qlib.stores.hikyuu.writer import HikyuuWriter

__all__ = ["HikyuuStore", "HikyuuWriter", "adjust_bars"]

_WHERE = {
    "HikyuuStore": "hikyuu_qlib.stores.hikyuu.store",
    "HikyuuWriter": "hikyuu_qlib.stores.hikyuu.writer",
    "adjust_bars": "hikyuu_qlib.stores.hikyuu.adjust",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
