"""The files of a Hikyuu store, shared by the per-code reads (:mod:`.store`) and the bulk reads (:mod:`.bulk`).

:class:`StoreFiles` holds the layout, ``stock.db`` (:class:`~.basedb.BaseInfo`), the catalog of the codes
the store knows (built once, on first use: see :mod:`.catalog`), the HDF5 handles (opened lazily and
kept, one per file, under a lock) and the check of which ktypes the files serve. It is safe to share
between threads.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from hikyuu_qlib.domain import KType, Market, StockCode, UnknownCodeError, UnsupportedKTypeError
from hikyuu_qlib.stores.hikyuu.basedb import BaseInfo, StockRow
from hikyuu_qlib.stores.hikyuu.catalog import Catalog, base_kind, build_catalog
from hikyuu_qlib.stores.hikyuu.config import StoreLayout
from hikyuu_qlib.stores.hikyuu.h5 import H5File
from hikyuu_qlib.stores.hikyuu.periods import BASE_KIND, DERIVED


class StoreFiles:
    """Layout, base info, catalog, HDF5 handles and ktype checks of one Hikyuu store."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self.base_info = BaseInfo(layout.db)
        self._handles: dict[Path, H5File] = {}
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._catalog_lock = threading.Lock()

    @property
    def source(self) -> str:
        """``hikyuu:`` and the store's canonical path (absolute, symlinks resolved)."""
        return f"hikyuu:{self.layout.source_path}"

    def data_version(self) -> str:
        """Digest of the resolved path, size and mtime of stock.db and every HDF5 file: the same store
        named in any spelling has one version, and any change to a file changes it."""
        digest = hashlib.sha256()
        blocks = self.layout.block_files().paths()
        for path in [self.layout.db, *sorted(self.layout.files.values()), *blocks]:
            real = path.resolve()
            try:
                st = real.stat()
            except OSError:
                digest.update(f"{real}:missing".encode())
                continue
            digest.update(f"{real}:{st.st_size}:{st.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]

    def ktypes(self) -> frozenset[KType]:
        """The ktypes the files serve: their base kinds and the periods built from them."""
        kinds = {kind for (_, kind) in self.layout.files}
        out = {k for k, kind in BASE_KIND.items() if kind in kinds}
        out |= {k for k, (_, base) in DERIVED.items() if base in kinds}
        return frozenset(out)

    def require_ktype(self, ktype: KType) -> None:
        """:class:`UnsupportedKTypeError` naming the store and its ktypes when the files cannot serve ``ktype``."""
        have = self.ktypes()
        if ktype not in have:
            names = ", ".join(sorted(k.value for k in have)) or "none"
            raise UnsupportedKTypeError(
                f"ktype {ktype.value!r} is not in Hikyuu store {self.layout.source_path} (it has: {names})"
            )

    def catalog(self) -> Catalog:
        """The codes the store knows and which hold data (built once, on first use)."""
        with self._catalog_lock:
            if self._catalog is None:
                kind = base_kind(kind for (_, kind) in self.layout.files)
                self._catalog = build_catalog(
                    self.base_info.stock_index(), kind, self.h5, self.layout.datadir
                )
            return self._catalog

    def stock_index(self) -> dict[StockCode, StockRow]:
        """Every code the store knows (stock.db's and the tables' missing from it) with its row."""
        return self.catalog().rows

    def require_code(self, code: StockCode) -> StockRow:
        """The row of a code the store knows; :class:`UnknownCodeError` for any other."""
        row = self.stock_index().get(code)
        if row is None:
            raise UnknownCodeError(
                f"unknown code {code}: not in {self.layout.db} and no table in {self.layout.datadir}"
            )
        return row

    def h5(self, market: Market, kind: str) -> H5File | None:
        """The open handle of a market's file of ``kind`` (``None``: the store has no such file)."""
        path = self.layout.file(market, kind)
        if path is None:
            return None
        with self._lock:
            handle = self._handles.get(path)
            if handle is None:
                handle = self._handles[path] = H5File(path)
            return handle

    def release(self) -> None:
        """Close the open HDF5 files (they reopen on next use)."""
        with self._lock:
            handles = list(self._handles.values())
        for handle in handles:
            handle.close()

    def close(self) -> None:
        self.release()
        with self._lock:
            self._handles.clear()
        self.base_info.close()


__all__ = ["StoreFiles"]
