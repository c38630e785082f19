"""``HikyuuStore``: the MarketData adapter over a Hikyuu data directory."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import polars as pl

from hikyuu_qlib.domain import (
    Adjust,
    DataFormatError,
    DateRange,
    HQError,
    KType,
    LoadErrors,
    Market,
    NoBarsError,
    NotFoundError,
    StockCode,
    StockType,
    UnknownCodeError,
)
from hikyuu_qlib.domain.schema import (
    DATETIME,
    MEMBERSHIP_SCHEMA,
    STOCK_SCHEMA,
    WEIGHT_SCHEMA,
    conform_bars,
    empty_bars,
)
from hikyuu_qlib.loadplan import BarQuery, read_each
from hikyuu_qlib.stores.hikyuu import bulk
from hikyuu_qlib.stores.hikyuu.adjust import adjust_bars
from hikyuu_qlib.stores.hikyuu.basedb import StockRow
from hikyuu_qlib.stores.hikyuu.blocks import block_names, find_block
from hikyuu_qlib.stores.hikyuu.catalog import Catalog
from hikyuu_qlib.stores.hikyuu.config import StoreLayout, resolve_layout
from hikyuu_qlib.stores.hikyuu.files import StoreFiles
from hikyuu_qlib.stores.hikyuu.frames import LOT, Columns
from hikyuu_qlib.stores.hikyuu.h5 import INDEX_DTYPE, H5File, ymdhm_to_ms
from hikyuu_qlib.stores.hikyuu.periods import BASE_KIND, DAY_GROUPS, DERIVED, aggregate, check_starts
from hikyuu_qlib.stores.hikyuu.ticks import read_timeline, read_trans

#: Universes served by :meth:`HikyuuStore.members` and the stock types they hold.
EQUITY_TYPES: tuple[StockType, ...] = (StockType.A_SHARE, StockType.CHINEXT, StockType.STAR)
UNIVERSES: dict[str, Market | None] = {"all": None, "sh": Market.SH, "sz": Market.SZ, "bj": Market.BJ}
CALENDAR_CODE = StockCode(Market.SH, "000001")
_FOREVER = DateRange()

log = logging.getLogger(__name__)


class HikyuuStore:
    """A Hikyuu store: ``{sh,sz,bj}_{day,1min,5min}.h5`` plus ``stock.db``.

    Units: prices in yuan, volume in shares (day bars of non-index securities are stored in lots),
    amount in yuan. Day bars are stamped at midnight; period bars at the period end.
    Safe to share between threads: HDF5 files open lazily and are read under a lock. The files (layout,
    stock.db, catalog, HDF5 handles) are :attr:`files` (:class:`~.files.StoreFiles`), which the bulk
    reads (:mod:`.bulk`) share; per-code reads and the periods built from them are here.

    Codes: those of ``stock.db`` and those with a table (see :mod:`.catalog`). A listed code without a
    table raises :class:`NoBarsError` ("without bars"); a code the store does not know at all raises
    :class:`UnknownCodeError`. Forward or backward adjustment on a store without any weight record
    (``stkWeight`` empty, e.g. after a TDX import without a base db) serves unadjusted prices and warns
    once per store.
    """

    def __init__(self, layout: StoreLayout, *, cache_dir: Path | None = None) -> None:
        self.files = StoreFiles(layout)
        self.cache_dir = cache_dir
        self._db = self.files.base_info
        self._calendars: dict[KType, pl.Series] = {}
        self._note_lock = threading.Lock()
        self._weights_noted = False
        self._blocks: pl.DataFrame | None = None
        self._block_index: pl.DataFrame | None = None
        self._blocks_noted: set[str] = set()

    @classmethod
    def open(cls, path: Path, *, cache_dir: Path | None = None) -> HikyuuStore:
        """Open a data directory, a ``hikyuu.ini`` or a directory holding one.

        ``cache_dir`` lets whole-store loads (:meth:`read_all`) keep decoded columns between runs.
        """
        return cls(resolve_layout(Path(path)), cache_dir=cache_dir)

    @property
    def layout(self) -> StoreLayout:
        return self.files.layout

    # -- MarketData -------------------------------------------------------------------------------
    @property
    def source(self) -> str:
        """``hikyuu:`` and the store's canonical path (absolute, symlinks resolved)."""
        return self.files.source

    def data_version(self) -> str:
        """Digest of the resolved path, size and mtime of stock.db and every HDF5 file: the same store
        named in any spelling has one version, and any change to a file changes it."""
        return self.files.data_version()

    def markets(self) -> list[Market]:
        return self._db.markets()

    def ktypes(self) -> frozenset[KType]:
        return self.files.ktypes()

    def stocks(
        self,
        *,
        market: Market | None = None,
        types: Sequence[StockType] | None = None,
        valid: bool | None = True,
    ) -> pl.DataFrame:
        """stock.db's stocks plus the codes that have a table but are not in it (types from the code
        rules, valid, no name or dates), with ``has_data``: whether the code has a table of the store's
        base kind (see :mod:`.catalog`)."""
        catalog = self.catalog()
        listed = self._db.stocks(market=market, types=types, valid=valid)
        orphans = [
            c
            for c in catalog.orphans
            if (market is None or c.market is market)
            and (types is None or catalog.rows[c].type in {int(t) for t in types})
            and valid is not False
        ]
        if orphans:
            info = self._db.type_info()
            kinds = [catalog.rows[c].type for c in orphans]
            extra = pl.DataFrame(
                {
                    "code": [str(c) for c in orphans],
                    "market": [c.market.value for c in orphans],
                    "symbol": [c.symbol for c in orphans],
                    "name": [None] * len(orphans),
                    "type": kinds,
                    "valid": [True] * len(orphans),
                    "start_date": [None] * len(orphans),
                    "end_date": [None] * len(orphans),
                    "lot": [info.get(k, (None, None))[0] for k in kinds],
                    "tick": [info.get(k, (None, None))[1] for k in kinds],
                },
                schema=listed.schema,
            )
            listed = pl.concat([listed, extra]).sort("code")
        with_data = [str(c) for c in catalog.with_data]
        frame = listed.with_columns(pl.col("code").is_in(with_data).alias("has_data"))
        return frame.select([pl.col(n).cast(t) for n, t in STOCK_SCHEMA.items()])

    def catalog(self) -> Catalog:
        """The codes the store knows and which hold data (built once, on first use)."""
        return self.files.catalog()

    def stock_index(self) -> dict[StockCode, StockRow]:
        """Every code the store knows (stock.db's and the tables' missing from it) with its row."""
        return self.files.stock_index()

    def calendar(self, *, ktype: KType = KType.DAY, dates: DateRange | None = None) -> pl.Series:
        self.files.require_ktype(ktype)
        cal = self._calendars.get(ktype)
        if cal is None:
            cal = self._build_calendar(ktype)
            self._calendars[ktype] = cal
        if dates is not None:
            cal = cal.filter((cal >= dates.start) & (cal <= dates.end))
        return cal

    def members(self, universe: str, dates: DateRange | None = None) -> pl.DataFrame:
        """Membership spans of ``all``, ``sh``, ``sz``, ``bj`` (the listed equities of a market) or of a
        block (:mod:`.blocks`: ``沪深300``, ``指数板块/沪深300``, ``csi300``, its index's code ``SH000300`` …). A block has no dates: its
        members span their listing (stock.db's dates), or all time for a code stock.db does not date."""
        key = universe.strip().lower()
        if key in UNIVERSES:
            spans = self._db.members(UNIVERSES[key], EQUITY_TYPES)
        else:
            spans = self._block_members(universe)
        if dates is not None:
            spans = spans.filter((pl.col("start") <= dates.end) & (pl.col("end") >= dates.start))
        return spans.select([pl.col(n).cast(t) for n, t in MEMBERSHIP_SCHEMA.items()]).sort("code", "start")

    def blocks(self) -> pl.DataFrame:
        """Every block's members: ``category, name, code`` (read once; see :mod:`.blocks`)."""
        if self._blocks is None:
            self._blocks = self.layout.block_files().read()
        return self._blocks

    def block_index(self) -> pl.DataFrame:
        """The index of each block that has one: ``category, name, index_code`` (stock.db's BlockIndex
        table, read once), kept as Hikyuu keeps ``Block.index_stock``: only for a block the store has,
        and only an index code stock.db lists."""
        if self._block_index is None:
            index = self.layout.block_files().read_index()
            pairs = self.blocks().select("category", "name").unique()
            listed = self._db.stocks(valid=None).select(pl.col("code").alias("index_code"))
            index = index.join(pairs, on=["category", "name"], how="semi")
            self._block_index = index.join(listed, on="index_code", how="semi").sort("category", "name")
        return self._block_index

    def _block_members(self, universe: str) -> pl.DataFrame:
        blocks = self.blocks()
        index = self.block_index()
        hit = find_block(blocks, universe, index)
        if hit is None:
            names = block_names(blocks)
            shown = ", ".join(names[:10]) + (f" … ({len(names)} blocks)" if len(names) > 10 else "")
            known = ", ".join(index["index_code"].unique().sort().head(10).to_list())
            raise NotFoundError(
                f"unknown universe {universe!r} in {self.source}: known universes are "
                f"{', '.join(UNIVERSES)}"
                + (f" and the blocks {shown}" if names else " (the store has no blocks)")
                + (f", or a block's index code ({known})" if known else "")
            )
        if universe not in self._blocks_noted:
            self._blocks_noted.add(universe)
            log.warning(
                "universe %r is a Hikyuu block: today's members only, so a backtest of the past on it has "
                "survivorship bias",
                universe,
            )
        listed = self._db.members(None, tuple(StockType))
        codes = pl.DataFrame({"code": hit["code"].unique().sort()})
        dated = codes.join(listed, on="code", how="left")
        return dated.with_columns(
            pl.col("start").fill_null(_FOREVER.start), pl.col("end").fill_null(_FOREVER.end)
        )

    def read_bars(
        self,
        code: StockCode,
        *,
        ktype: KType = KType.DAY,
        adjust: Adjust = Adjust.NONE,
        dates: DateRange | None = None,
    ) -> pl.DataFrame:
        code = StockCode.parse(code)
        row = self.files.require_code(code)
        self.files.require_ktype(ktype)
        self._note_adjust(adjust)
        if ktype in DERIVED:
            group, base = DERIVED[ktype]
            cols = self._columns(code, row, base)
            frame = self._period_frame(code, row, cols, base, group, adjust, dates)
        else:
            cols = self._columns(code, row, BASE_KIND[ktype])
            if dates is not None:
                cols = cols.take(dates.calendar_slice(cols.datetime))
            frame = cols.frame(str(code))
            if adjust is not Adjust.NONE:
                frame = adjust_bars(frame, self.weights(code), adjust)
        return conform_bars(frame)

    def read_many(
        self,
        codes: Sequence[StockCode],
        *,
        ktype: KType = KType.DAY,
        adjust: Adjust = Adjust.NONE,
        dates: DateRange | None = None,
    ) -> tuple[pl.DataFrame, dict[str, HQError]]:
        """:meth:`read_bars` of many codes: the frame of the codes that loaded, sorted by (code, datetime),
        and each failing code's error. Base ktypes (day, minutes) are read in one bulk pass (see
        ``bulk.read_many``); the periods built from them (week … year, min15 …) code by code."""
        self._note_adjust(adjust)
        if ktype in BASE_KIND:
            return bulk.read_many(self.files, codes, ktype=ktype, adjust=adjust, dates=dates)
        return read_each(self, sorted(set(codes)), BarQuery(ktype, adjust, dates))

    def weights(self, code: StockCode) -> pl.DataFrame:
        code = StockCode.parse(code)
        row = self._db.lookup(code)
        if row is None:
            return pl.DataFrame(schema=WEIGHT_SCHEMA)
        return self._db.weights([row.stockid]).drop("stockid")

    def timeline(self, code: StockCode, *, dates: DateRange | None = None) -> pl.DataFrame:
        """The time-line (分时, one row a minute) of ``code`` from ``{market}_time.h5``: ``code, datetime,
        price, volume`` (see :mod:`.ticks`); :class:`NoBarsError` when the store has no such file or table."""
        return self._ticks(StockCode.parse(code), "time", dates)

    def trans(self, code: StockCode, *, dates: DateRange | None = None) -> pl.DataFrame:
        """The ticks (分笔) of ``code`` from ``{market}_trans.h5``: ``code, datetime, price, volume,
        direction`` (see :mod:`.ticks`); :class:`NoBarsError` when the store has no such file or table."""
        return self._ticks(StockCode.parse(code), "trans", dates)

    def _ticks(self, code: StockCode, kind: str, dates: DateRange | None) -> pl.DataFrame:
        row = self.files.require_code(code)
        path = self.layout.tick_file(code.market, kind)
        if path is None:
            name = f"{code.market.value.lower()}_{kind}.h5"
            raise NoBarsError(f"{code}: Hikyuu store {self.layout.datadir} has no {name} file")
        scale = LOT if row.volume_in_lots else 1.0
        reader = read_timeline if kind == "time" else read_trans
        return reader(path, code.hikyuu_table, volume_scale=scale, dates=dates)

    def release_files(self) -> None:
        """Close the open HDF5 files (they reopen on next use)."""
        self.files.release()

    def risk_free(self) -> pl.DataFrame | None:
        """The 10-year government bond yields of ``stock.db`` (``datetime, rate``, annual fractions; see
        :mod:`.bonds`), or ``None`` when the table is empty: a :class:`~hikyuu_qlib.ports.RiskFreeSource`."""
        from hikyuu_qlib.stores.hikyuu.bonds import read_zh_bond10

        rates = read_zh_bond10(self.layout.db)
        return rates if rates.height else None

    def close(self) -> None:
        self.files.close()

    def __enter__(self) -> HikyuuStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HikyuuStore({str(self.layout.source_path)!r})"

    # -- bulk -------------------------------------------------------------------------------------
    def read_all(
        self,
        ktype: KType = KType.DAY,
        adjust: Adjust = Adjust.NONE,
        codes: Sequence[StockCode] | None = None,
        workers: int | None = None,
    ) -> pl.DataFrame:
        """Every (or the given) stock's bars in one frame sorted by (code, datetime).

        Base ktypes are read in one bulk pass (see ``bulk.read_all``; ``workers`` threads decode). The
        periods built from them (week … year, min15 …) are built code by code: over the whole store the
        codes without bars are left out, a given code that is unknown or without bars raises its error,
        and codes whose tables are damaged raise :class:`LoadErrors` naming each."""
        self._note_adjust(adjust)
        if ktype in BASE_KIND:
            return bulk.read_all(
                self.files, ktype=ktype, adjust=adjust, codes=codes, workers=workers, cache_dir=self.cache_dir
            )
        self.files.require_ktype(ktype)
        whole = codes is None
        if codes is None:
            codes = [StockCode.parse(c) for c in self.stocks(valid=None).get_column("code").to_list()]
        frame, errors = read_each(self, sorted(StockCode.parse(c) for c in codes), BarQuery(ktype, adjust))
        if whole:
            errors = {c: e for c, e in errors.items() if not isinstance(e, UnknownCodeError | NoBarsError)}
        first = next((e for _, e in sorted(errors.items()) if not isinstance(e, DataFormatError)), None)
        if first is not None:
            raise first
        if errors:
            raise LoadErrors(errors)
        return frame

    # -- internals --------------------------------------------------------------------------------
    def _note_adjust(self, adjust: Adjust) -> None:
        """Warn (once per store) when prices are to be adjusted but the store has no weight record."""
        if adjust is Adjust.NONE or self._weights_noted:
            return
        with self._note_lock:
            if self._weights_noted:
                return
            self._weights_noted = True
        if not self._db.has_weights():
            log.warning(
                "Hikyuu store %s has no weight records (stkWeight is empty): %s-adjusted prices stay "
                "unadjusted (import with a base stock.db, e.g. import-tdx --base-db, to adjust them)",
                self.layout.source_path,
                adjust.value,
            )

    def _file_for(self, code: StockCode, kind: str) -> H5File:
        handle = self.files.h5(code.market, kind)
        if handle is None:
            raise NoBarsError(
                f"{code}: Hikyuu store {self.layout.datadir} has no {code.market.value.lower()} {kind} file"
            )
        return handle

    def _columns(self, code: StockCode, row: StockRow, kind: str) -> Columns:
        handle = self._file_for(code, kind)
        rec = handle.read("data", code.hikyuu_table)
        scale = LOT if (kind == "day" and row.volume_in_lots) else 1.0
        cols = Columns.from_records(rec, volume_scale=scale, where=f"{handle.path}:/data/{code}")
        if cols.datetime.size > 1 and bool(np.any(np.diff(cols.datetime) < 0)):
            cols = cols.take(np.argsort(cols.datetime, kind="stable"))
        return cols

    def _period_frame(
        self,
        code: StockCode,
        row: StockRow,
        cols: Columns,
        base: str,
        group: str,
        adjust: Adjust,
        dates: DateRange | None,
    ) -> pl.DataFrame:
        handle = self._file_for(code, base)
        where = f"{handle.path}:/{group}/{code}"
        index = handle.read(group, code.hikyuu_table, required=tuple(INDEX_DTYPE.names or ()))
        labels = ymdhm_to_ms(index["datetime"], where=where)
        starts = check_starts(index["start"], len(cols), where)
        keep = np.ones(labels.shape[0], dtype=bool)
        if dates is not None:
            lo_ms, hi_ms = dates.ms_bounds()
            keep = (labels >= lo_ms) & (labels <= hi_ms)
        if not keep.any():
            return empty_bars()
        first, last = int(np.argmax(keep)), int(keep.size - 1 - np.argmax(keep[::-1]))
        row_lo = int(starts[first])
        row_hi = int(starts[last + 1]) if last + 1 < starts.size else len(cols)
        part = cols.take(slice(row_lo, row_hi))
        if adjust is not Adjust.NONE:
            adjusted = adjust_bars(part.frame(str(code)), self.weights(code), adjust)
            names = ("open", "high", "low", "close", "volume", "amount")
            values = [adjusted.get_column(c).to_numpy() for c in names]
            part = Columns(part.datetime, *values)
        rel = starts[first : last + 1] - row_lo
        agg = aggregate(rel, part.open, part.high, part.low, part.close, part.volume, part.amount)
        return Columns(labels[first : last + 1], *agg).frame(str(code))

    def _build_calendar(self, ktype: KType) -> pl.Series:
        kind = BASE_KIND.get(ktype) or DERIVED[ktype][1]
        group = "data" if ktype in BASE_KIND else DERIVED[ktype][0]
        arrays: list[Any] = []
        sh = self.files.h5(Market.SH, kind)
        if sh is not None and sh.has(group, CALENDAR_CODE.hikyuu_table):
            arrays.append(sh.read(group, CALENDAR_CODE.hikyuu_table, required=("datetime",))["datetime"])
        else:
            for market in Market:
                handle = self.files.h5(market, kind)
                if handle is None:
                    continue
                for name in handle.names(group):
                    arrays.append(handle.read(group, name, required=("datetime",))["datetime"])
        values = np.unique(np.concatenate(arrays)) if arrays else np.empty(0, np.uint64)
        ms = ymdhm_to_ms(values, where=f"calendar of {self.layout.datadir}")
        return pl.Series("datetime", ms, dtype=pl.Int64).cast(DATETIME)


__all__ = ["DAY_GROUPS", "HikyuuStore"]
