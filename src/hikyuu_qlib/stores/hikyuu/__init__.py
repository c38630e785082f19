"""Hikyuu data store adapter: HDF5 K-line files plus the stock.db base-info database.

``HikyuuStore`` reads a store (``read_bars``, ``read_all`` for whole-market loads), ``HikyuuWriter``
writes one, ``adjust_bars`` is Hikyuu's forward/backward price adjustment on any bars frame.

The names resolve on first use, so that importing one module of the adapter (the adjustment, say)
does not pay for PyTables and the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hikyuu_qlib.lazy import lazy_exports as _lazy_exports

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

__getattr__ = _lazy_exports(globals(), _WHERE)
