"""Hikyuu data store adapter: HDF5 K-line files plus the stock.db base-info database."""

from hikyuu_qlib.stores.hikyuu.adjust import adjust_bars

__all__ = ["adjust_bars"]
