"""Qlib provider directories: read (:class:`QlibStore`) and write (:class:`QlibWriter`)."""

from hikyuu_qlib.stores.qlib.store import QlibStore
from hikyuu_qlib.stores.qlib.writer import QlibWriter

__all__ = ["QlibStore", "QlibWriter"]
