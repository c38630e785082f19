"""Queries on Hikyuu's base-info database ``stock.db`` (parameterised sqlite3, read-only)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hikyuu_qlib.domain import DataFormatError, Market, StockCode, StockType
from hikyuu_qlib.domain.schema import MEMBERSHIP_SCHEMA, STOCK_SCHEMA, WEIGHT_SCHEMA

#: The stock-list columns that stock.db holds (``has_data`` comes from the HDF5 files).
LISTING_SCHEMA: dict[str, pl.DataType] = {k: v for k, v in STOCK_SCHEMA.items() if k != "has_data"}

OPEN_END = 99999999
_OPEN_END_DT = dt.datetime(2099, 12, 31)

_STOCK_SQL = """
SELECT m.market, s.code, s.name, s.type, s.valid, s.startDate, s.endDate,
       t.minTradeNumber, t.tick
FROM Stock AS s
JOIN Market AS m ON m.marketid = s.marketid
LEFT JOIN StockTypeInfo AS t ON t.type = s.type
"""

_WEIGHT_SQL = """
SELECT w.stockid, w.date, w.countAsGift, w.countForSell, w.priceForSell, w.bonus,
       w.countOfIncreasement, w.totalCount, w.freeCount, w.suogu
FROM stkWeight AS w
"""


@dataclass(frozen=True, slots=True)
class StockRow:
    stockid: int
    code: StockCode
    type: int
    valid: bool

    @property
    def volume_in_lots(self) -> bool:
        """Day bars of everything but indices count lots of 100 shares."""
        return self.type != StockType.INDEX.value


class BaseInfo:
    """A read-only connection to ``stock.db`` shared by threads under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(read_only_uri(path), uri=True, check_same_thread=False)
            self._conn.execute("SELECT 1 FROM Stock LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise DataFormatError(f"{path}: not a Hikyuu stock.db ({exc})") from None
        self._index: dict[StockCode, StockRow] | None = None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise DataFormatError(f"{self.path}: query failed ({exc})") from None

    def markets(self) -> list[Market]:
        known = {m.value for m in Market}
        rows = self.query("SELECT market FROM Market ORDER BY marketid")
        return [Market(str(r[0]).upper()) for r in rows if str(r[0]).upper() in known]

    def stock_index(self) -> dict[StockCode, StockRow]:
        """Every stock of the database by code (loaded once)."""
        if self._index is None:
            rows = self.query(
                "SELECT s.stockid, m.market, s.code, s.type, s.valid FROM Stock AS s "
                "JOIN Market AS m ON m.marketid = s.marketid"
            )
            index: dict[StockCode, StockRow] = {}
            for stockid, market, code, kind, valid in rows:
                try:
                    sc = StockCode(Market(str(market).upper()), str(code))
                except ValueError:  # codes this platform cannot name are left out
                    continue
                index[sc] = StockRow(int(stockid), sc, int(kind or 0), bool(valid))
            self._index = index
        return self._index

    def lookup(self, code: StockCode) -> StockRow | None:
        return self.stock_index().get(code)

    def stocks(
        self,
        market: Market | None = None,
        types: Sequence[StockType] | None = None,
        valid: bool | None = True,
    ) -> pl.DataFrame:
        clauses: list[str] = []
        params: list[Any] = []
        if market is not None:
            clauses.append("UPPER(m.market) = ?")
            params.append(market.value)
        if types is not None:
            if not types:
                return pl.DataFrame(schema=LISTING_SCHEMA)
            clauses.append(f"s.type IN ({', '.join('?' for _ in types)})")
            params.extend(int(t) for t in types)
        if valid is not None:
            clauses.append("s.valid = ?" if valid else "(s.valid = ? OR s.valid IS NULL)")
            params.append(1 if valid else 0)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.query(_STOCK_SQL + where + " ORDER BY m.market, s.code", params)
        raw = pl.DataFrame(
            rows,
            schema={
                "market": pl.String,
                "symbol": pl.String,
                "name": pl.String,
                "type": pl.Int32,
                "valid": pl.Int64,
                "start": pl.Int64,
                "end": pl.Int64,
                "lot": pl.Float64,
                "tick": pl.Float64,
            },
            orient="row",
        )
        frame = (
            raw.filter(pl.col("symbol").str.len_chars() == 6)
            .with_columns(
                pl.col("market").str.to_uppercase(),
            )
            .with_columns(
                (pl.col("market") + pl.col("symbol")).alias("code"),
                (pl.col("valid") == 1).alias("valid"),
                _int_date(pl.col("start")).alias("start_date"),
                _int_date(pl.col("end")).alias("end_date"),  # 99999999 (listed) -> null
                pl.col("lot").round(0).cast(pl.Int64),
            )
        )
        return frame.select([pl.col(n).cast(t) for n, t in LISTING_SCHEMA.items()]).sort("code")

    def type_info(self) -> dict[int, tuple[int | None, float | None]]:
        """``(lot, tick)`` of each stock type (StockTypeInfo's minTradeNumber and tick)."""
        rows = self.query("SELECT type, minTradeNumber, tick FROM StockTypeInfo")
        return {
            int(t): (None if lot is None else round(float(lot)), None if tick is None else float(tick))
            for t, lot, tick in rows
            if t is not None
        }

    def has_weights(self) -> bool:
        """Whether stkWeight holds any row at all (a store imported without a base db has none)."""
        return bool(self.query("SELECT EXISTS (SELECT 1 FROM stkWeight)")[0][0])

    def members(self, market: Market | None, types: Sequence[StockType]) -> pl.DataFrame:
        """Listing spans (``MEMBERSHIP_SCHEMA``) of every stock of ``types`` in ``market``."""
        frame = self.stocks(market=market, types=types, valid=None)
        spans = frame.filter(pl.col("start_date").is_not_null()).select(
            "code",
            pl.col("start_date").cast(pl.Datetime("ms")).alias("start"),
            pl.col("end_date").cast(pl.Datetime("ms")).fill_null(_OPEN_END_DT).alias("end"),
        )
        spans = spans.filter(pl.col("start") <= pl.col("end"))
        return spans.select([pl.col(n).cast(t) for n, t in MEMBERSHIP_SCHEMA.items()])

    def weights(self, stockids: Sequence[int]) -> pl.DataFrame:
        """Weight rows of some stocks in natural units, with a ``stockid`` column, sorted."""
        if not stockids:
            return _weights_frame([])
        rows: list[tuple[Any, ...]] = []
        ids = list(stockids)
        for i in range(0, len(ids), 900):  # stay under SQLite's host-parameter limit
            chunk = ids[i : i + 900]
            rows += self.query(_WEIGHT_SQL + f"WHERE w.stockid IN ({', '.join('?' for _ in chunk)})", chunk)
        return _weights_frame(rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def read_only_uri(path: Path) -> str:
    """A SQLite URI opening ``path`` read-only: absolute and percent-encoded, so that ``#``, ``?``, ``%``,
    spaces and non-ASCII characters in the path stay part of the file name (and nothing is created)."""
    return Path(path).expanduser().resolve().as_uri() + "?mode=ro"


def _int_date(col: pl.Expr) -> pl.Expr:
    """YYYYMMDD integers to Date; zero and impossible dates become null."""
    return (
        pl.when((col > 19000101) & (col < OPEN_END))
        .then(col.cast(pl.String).str.to_date("%Y%m%d", strict=False))
        .otherwise(None)
    )


def _weights_frame(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    raw = pl.DataFrame(
        rows,
        schema={
            "stockid": pl.Int64,
            "d": pl.Int64,
            "gift": pl.Float64,
            "sell": pl.Float64,
            "price": pl.Float64,
            "bonus": pl.Float64,
            "incr": pl.Float64,
            "total": pl.Float64,
            "free": pl.Float64,
            "suogu": pl.Float64,
        },
        orient="row",
    ).with_columns(pl.col(pl.Float64).fill_null(0.0))
    frame = raw.with_columns(
        _int_date(pl.col("d")).cast(pl.Datetime("ms")).alias("date"),
        (pl.col("gift") / 10000).alias("count_as_gift"),
        (pl.col("sell") / 10000).alias("count_for_sell"),
        (pl.col("price") / 1000).alias("price_for_sell"),
        (pl.col("bonus") / 1000).alias("bonus"),
        (pl.col("incr") / 10000).alias("count_of_increasement"),
        pl.col("suogu").alias("suogu"),
        pl.col("total").alias("total_count"),
        pl.col("free").alias("free_count"),
    ).filter(pl.col("date").is_not_null())
    cols = [pl.col("stockid")] + [pl.col(n).cast(t) for n, t in WEIGHT_SCHEMA.items()]
    return frame.select(cols).sort("stockid", "date", maintain_order=True)


def weights_of(frame: pl.DataFrame, stockid: int) -> pl.DataFrame:
    """One stock's rows of a :meth:`BaseInfo.weights` frame, in ``WEIGHT_SCHEMA``."""
    return frame.filter(pl.col("stockid") == stockid).drop("stockid")


def group_bounds(stockids: np.ndarray[Any, Any]) -> dict[int, tuple[int, int]]:
    """Row ranges of each stockid in a frame sorted by stockid."""
    if stockids.size == 0:
        return {}
    change = np.flatnonzero(np.diff(stockids)) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [stockids.size]))
    return {int(stockids[s]): (int(s), int(e)) for s, e in zip(starts, ends, strict=True)}
