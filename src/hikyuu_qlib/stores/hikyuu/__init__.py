"""Hikyuu data store adapter: HDF5 K-line files plus the stock.db base-info database."""

from hikyuu_qlib.stores.hikyuu.adjust import adjust_bars
from hikyuu_qlib.stores.hikyuu.store import HikyuuStore

__all__ = ["HikyuuStore", "adjust_bars"]
