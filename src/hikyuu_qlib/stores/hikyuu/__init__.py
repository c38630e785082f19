"""Hikyuu data store adapter: HDF5 K-line files plus the stock.db base-info database.

``HikyuuStore`` reads a store (``read_bars``, ``read_all`` for whole-market loads), ``HikyuuWriter``
writes one, ``adjust_bars`` is Hikyuu's forward/backward price adjustment on any bars frame.
"""

from hikyuu_qlib.stores.hikyuu.adjust import adjust_bars
from hikyuu_qlib.stores.hikyuu.store import HikyuuStore
from hikyuu_qlib.stores.hikyuu.writer import HikyuuWriter

__all__ = ["HikyuuStore", "HikyuuWriter", "adjust_bars"]
