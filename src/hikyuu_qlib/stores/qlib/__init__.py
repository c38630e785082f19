"""Qlib provider directories: read (:class:`QlibStore`) and write (:class:`QlibWriter`)."""

from hikyuu_qlib.stores.qlib.store import QlibStore

__all__ = ["QlibStore"]
