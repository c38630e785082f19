"""``HikyuuWriter``: write a Hikyuu-layout store (PyTables HDF5 K-line files plus ``stock.db``).

Tables are written as Hikyuu's importers write them: ``/data/<CODE>`` records with fields
``closePrice, datetime, highPrice, lowPrice, openPrice, transAmount, transCount`` (PyTables' column
order), zlib level 9 with shuffle, and the index tables (``/week`` … ``/year`` in day files,
``/min15`` … ``/hour2`` in 5-minute files) computed from the rows.

Units in: ``BAR_SCHEMA`` (yuan, shares, yuan). Units out: prices x1000, amount in thousands of yuan,
volume in lots for day bars of non-index securities and in shares otherwise.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import tables

from hikyuu_qlib.domain import InvalidInputError, KType, Market, StockCode, StockType
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.stores.hikyuu.basedb import OPEN_END
from hikyuu_qlib.stores.hikyuu.basedb_schema import DDL, MARKET_IDS, MARKET_ROWS, STOCK_TYPE_ROWS
from hikyuu_qlib.stores.hikyuu.coderules import stock_type_of
from hikyuu_qlib.stores.hikyuu.config import FILE_KINDS
from hikyuu_qlib.stores.hikyuu.h5 import INDEX_DTYPE, ms_to_ymdhm, ymdhm_to_ms
from hikyuu_qlib.stores.hikyuu.periods import (
    DAY_GROUPS,
    MIN5_GROUPS,
    day_period_labels,
    index_from_labels,
    minute_period_labels,
)

log = logging.getLogger(__name__)

#: The record as PyTables lays out Hikyuu's ``H5Record`` (columns in name order).
WRITE_DTYPE = np.dtype(
    [
        ("closePrice", "<u4"),
        ("datetime", "<u8"),
        ("highPrice", "<u4"),
        ("lowPrice", "<u4"),
        ("openPrice", "<u4"),
        ("transAmount", "<u8"),
        ("transCount", "<u8"),
    ]
)
KIND_OF_KTYPE: dict[KType, str] = {KType.DAY: "day", KType.MIN: "min", KType.MIN5: "min5"}


class HikyuuWriter:
    """Writes bars, stocks and weights into a Hikyuu data directory (created when absent)."""

    def __init__(self, root: Path, *, complevel: int = 9) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.filters = tables.Filters(complevel=complevel, complib="zlib", shuffle=True)
        self._files: dict[tuple[Market, str], tables.File] = {}
        self._last_dates: dict[Market, int] = {}
        self._db = sqlite3.connect(self.root / "stock.db", timeout=60.0)
        for ddl in DDL:
            self._db.execute(ddl)
        self._db.executemany("INSERT OR IGNORE INTO Market VALUES (?,?,?,?,?,?,?,?,?,?)", MARKET_ROWS)
        self._db.executemany("INSERT OR IGNORE INTO StockTypeInfo VALUES (?,?,?,?,?,?,?,?)", STOCK_TYPE_ROWS)
        self._db.commit()

    # -- stock.db ---------------------------------------------------------------------------------
    def write_stocks(self, stocks: pl.DataFrame) -> int:
        """Insert or replace Stock rows from a frame with ``code`` and optionally ``name, type, valid,
        start_date, end_date`` (``STOCK_SCHEMA`` names; end_date null = still listed)."""
        rows: list[tuple[Any, ...]] = []
        for rec in stocks.iter_rows(named=True):  # one row per stock, not per bar
            code = StockCode.parse(rec["code"])
            kind = rec.get("type")
            if kind is None:
                kind = int(stock_type_of(code) or StockType.A_SHARE)
            rows.append(
                (
                    MARKET_IDS[code.market],
                    code.symbol,
                    rec.get("name") or code.symbol,
                    int(kind),
                    1 if rec.get("valid", True) in (True, None) else 0,
                    _yyyymmdd(rec.get("start_date")) or 0,
                    _yyyymmdd(rec.get("end_date")) or OPEN_END,
                )
            )
        self._db.executemany("DELETE FROM Stock WHERE marketid = ? AND code = ?", [r[:2] for r in rows])
        self._db.executemany(
            "INSERT INTO Stock (marketid, code, name, type, valid, startDate, endDate) "
            "VALUES (?,?,?,?,?,?,?)",
            rows,
        )
        self._db.commit()
        return len(rows)

    def write_weights(self, weights: pl.DataFrame) -> int:
        """Replace the stkWeight rows of the codes in ``weights`` (``code`` + ``WEIGHT_SCHEMA``)."""
        if weights.height == 0:
            return 0
        ids = self._stock_ids()
        w = weights.with_columns(
            pl.col("date").cast(DATETIME).dt.strftime("%Y%m%d").cast(pl.Int64).alias("d"),
            *(pl.col(c).fill_null(0.0) for c in weights.columns if c not in ("code", "date")),
        )
        rows: list[tuple[Any, ...]] = []
        unknown: set[str] = set()
        for rec in w.iter_rows(named=True):  # one row per weight event
            code = StockCode.parse(rec["code"])
            sid = ids.get(code)
            if sid is None:
                unknown.add(str(code))
                continue
            rows.append(
                (
                    sid,
                    rec["d"],
                    round(rec.get("count_as_gift", 0.0) * 10000),
                    round(rec.get("count_for_sell", 0.0) * 10000),
                    round(rec.get("price_for_sell", 0.0) * 1000),
                    round(rec.get("bonus", 0.0) * 1000),
                    round(rec.get("count_of_increasement", 0.0) * 10000),
                    round(rec.get("total_count", 0.0)),
                    round(rec.get("free_count", 0.0)),
                    rec.get("suogu", 0.0),
                )
            )
        if unknown:
            db = self.root / "stock.db"
            raise InvalidInputError(f"weights for codes not in {db}: {sorted(unknown)[:10]}")
        sids = sorted({(r[0],) for r in rows})
        self._db.executemany("DELETE FROM stkWeight WHERE stockid = ?", sids)
        self._db.executemany(
            "INSERT INTO stkWeight (stockid, date, countAsGift, countForSell, priceForSell, bonus, "
            "countOfIncreasement, totalCount, freeCount, suogu) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        self._db.commit()
        return len(rows)

    def _stock_ids(self) -> dict[StockCode, int]:
        markets = {mid: m for m, mid in MARKET_IDS.items()}
        out: dict[StockCode, int] = {}
        for sid, mid, code in self._db.execute("SELECT stockid, marketid, code FROM Stock"):
            if mid in markets and len(code) == 6:
                out[StockCode(markets[mid], code)] = int(sid)
        return out

    def _stock_types(self) -> dict[StockCode, int]:
        markets = {mid: m for m, mid in MARKET_IDS.items()}
        out: dict[StockCode, int] = {}
        for mid, code, kind in self._db.execute("SELECT marketid, code, type FROM Stock"):
            if mid in markets and len(code) == 6:
                out[StockCode(markets[mid], code)] = int(kind)
        return out

    # -- bars -------------------------------------------------------------------------------------
    def write_bars(self, bars: pl.DataFrame, ktype: KType = KType.DAY, *, append: bool = False) -> int:
        """Write a ``BAR_SCHEMA`` frame (any number of codes); returns the rows written.

        With ``append`` rows later than a code's last stored bar are added to its table; otherwise a
        code's table is replaced. Index tables are recomputed either way.
        """
        kind = KIND_OF_KTYPE.get(ktype)
        if kind is None:
            raise InvalidInputError(f"cannot write ktype {ktype.value!r}: write day, min or min5 bars")
        types = self._stock_types()
        written = 0
        for (code_text,), part in bars.sort("code", "datetime").group_by("code", maintain_order=True):
            code = StockCode.parse(str(code_text))
            kind_type = types.get(code)
            if kind_type is None:
                kind_type = int(stock_type_of(code) or StockType.A_SHARE)
            lots = kind == "day" and kind_type != StockType.INDEX.value
            written += self.write_records(code, to_records(part, lots=lots), kind, append=append)
        return written

    def write_records(
        self, code: StockCode, records: npt.NDArray[Any], kind: str = "day", *, append: bool = False
    ) -> int:
        """Write Hikyuu-unit records (any field order with Hikyuu's field names) for one code."""
        h5 = self._file(code.market, kind)
        name = code.hikyuu_table
        rec = np.empty(records.shape[0], dtype=WRITE_DTYPE)
        for field in WRITE_DTYPE.names or ():
            rec[field] = records[field]
        rec = rec[np.argsort(rec["datetime"], kind="stable")]
        existing = _node(h5, f"/data/{name}")
        if existing is not None and append:
            old = existing.read()
            if old.shape[0]:
                rec = rec[rec["datetime"] > old["datetime"][-1]]
            if rec.shape[0]:
                existing.append(rec)
                existing.flush()
            full = existing.read()
        else:
            self._replace_table(h5, "/data", name, rec, WRITE_DTYPE)
            full = rec
        self._write_indexes(h5, name, full["datetime"], kind)
        self._touch_last_date(code.market, full["datetime"], kind)
        return int(rec.shape[0])

    def _write_indexes(self, h5: tables.File, name: str, ymdhm: npt.NDArray[Any], kind: str) -> None:
        if kind == "min":
            return
        ms = ymdhm_to_ms(ymdhm, where=f"{h5.filename}:/data/{name}")
        groups: dict[str, Any]
        if kind == "day":
            groups = {g: day_period_labels(ms, g) for g in DAY_GROUPS}
        else:
            groups = {g: minute_period_labels(ms, m) for g, m in MIN5_GROUPS.items()}
        for group, labels in groups.items():
            period, starts = index_from_labels(labels)
            index = np.empty(period.shape[0], dtype=INDEX_DTYPE)
            index["datetime"] = ms_to_ymdhm(period)
            index["start"] = starts.astype(np.uint64)
            self._replace_table(h5, f"/{group}", name, index, INDEX_DTYPE)

    def _replace_table(
        self, h5: tables.File, group: str, name: str, records: npt.NDArray[Any], dtype: Any
    ) -> None:
        """Write ``records`` as the table ``group/name``, replacing any table already there."""
        old = _node(h5, f"{group}/{name}")
        if old is not None:
            old._f_remove()
        table = h5.create_table(
            group,
            name,
            description=dtype,
            title=name,
            filters=self.filters,
            expectedrows=max(int(records.shape[0]), 1),
            createparents=True,
        )
        table.append(records)
        table.flush()

    def _touch_last_date(self, market: Market, ymdhm: npt.NDArray[Any], kind: str) -> None:
        if kind != "day" or ymdhm.shape[0] == 0:
            return
        last = int(ymdhm[-1]) // 10000
        self._last_dates[market] = max(last, self._last_dates.get(market, 0))

    def _file(self, market: Market, kind: str) -> tables.File:
        key = (market, kind)
        handle = self._files.get(key)
        if handle is None:
            path = self.root / f"{market.value.lower()}_{FILE_KINDS[kind]}.h5"
            handle = self._files[key] = tables.open_file(path, mode="a", filters=self.filters)
        return handle

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush and close everything; writes ``hikyuu.ini`` naming the files."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        self._db.executemany(
            "UPDATE Market SET lastDate = ? WHERE marketid = ? AND (lastDate IS NULL OR lastDate < ?)",
            [(d, MARKET_IDS[m], d) for m, d in self._last_dates.items()],
        )
        self._db.commit()
        self._db.close()
        self._write_ini()

    def _write_ini(self) -> None:
        lines = [
            "[hikyuu]",
            f"datadir = {self.root}",
            "",
            "[baseinfo]",
            "type = sqlite3",
            f"db = {self.root / 'stock.db'}",
            "",
            "[kdata]",
            "type = hdf5",
        ]
        for market in Market:
            for kind, suffix in FILE_KINDS.items():
                path = self.root / f"{market.value.lower()}_{suffix}.h5"
                if path.is_file():
                    lines.append(f"{market.value.lower()}_{kind} = {path}")
        (self.root / "hikyuu.ini").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def __enter__(self) -> HikyuuWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def to_records(bars: pl.DataFrame, *, lots: bool) -> npt.NDArray[Any]:
    """One code's ``BAR_SCHEMA`` bars as Hikyuu records (rounded to Hikyuu's units)."""
    n = bars.height
    rec = np.empty(n, dtype=WRITE_DTYPE)
    ms = bars.get_column("datetime").cast(DATETIME).cast(pl.Int64).to_numpy()
    rec["datetime"] = ms_to_ymdhm(ms)
    prices = (("openPrice", "open"), ("highPrice", "high"), ("lowPrice", "low"), ("closePrice", "close"))
    for field, col in prices:
        rec[field] = np.round(_f64(bars, col) * 1000.0)
    rec["transAmount"] = np.round(_f64(bars, "amount") / 1000.0)
    volume = _f64(bars, "volume")
    rec["transCount"] = np.round(volume / 100.0) if lots else np.round(volume)
    return rec


def _f64(frame: pl.DataFrame, name: str) -> npt.NDArray[np.float64]:
    if name not in frame.columns:
        return np.zeros(frame.height)
    values: npt.NDArray[np.float64] = frame.get_column(name).cast(pl.Float64).fill_null(0.0).to_numpy()
    return np.maximum(values, 0.0)


def _node(h5: tables.File, path: str) -> Any:
    try:
        return h5.get_node(path)
    except tables.NoSuchNodeError:
        return None


def _yyyymmdd(value: Any) -> int | None:
    if value is None:
        return None
    return int(value.year) * 10000 + int(value.month) * 100 + int(value.day)
