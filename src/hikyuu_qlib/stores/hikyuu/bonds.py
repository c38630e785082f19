"""Hikyuu's 10-year government bond yields (``zh_bond10`` in ``stock.db``): the risk-free rate.

The table holds one quote per date, the yield in percent × 10000 (``27350`` is 2.735 %). It is read
read-only; :meth:`~hikyuu_qlib.stores.hikyuu.HikyuuStore.risk_free` serves it as the store's
:class:`~hikyuu_qlib.ports.RiskFreeSource`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl

from hikyuu_qlib.domain import StoreNotFoundError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.stores.hikyuu.basedb import read_only_uri


def read_zh_bond10(stock_db: Path | str) -> pl.DataFrame:
    """Hikyuu's 10-year bond yields from ``stock.db`` (or its directory): ``datetime, rate`` (annual, as a
    fraction), ascending. Raises :class:`StoreNotFoundError` when the file or the table is missing."""
    path = Path(stock_db).expanduser()
    if path.is_dir():
        path = path / "stock.db"
    if not path.is_file():
        raise StoreNotFoundError(f"Hikyuu stock.db not found: {path}")
    with sqlite3.connect(read_only_uri(path), uri=True) as conn:
        try:
            rows = conn.execute("SELECT date, value FROM zh_bond10 ORDER BY date").fetchall()
        except sqlite3.OperationalError as err:
            raise StoreNotFoundError(f"{path} has no zh_bond10 table: {err}") from None
    frame = pl.DataFrame(rows, schema={"date": pl.Int64, "value": pl.Float64}, orient="row")
    return frame.select(
        pl.col("date").cast(pl.String).str.strptime(DATETIME, "%Y%m%d").alias("datetime"),
        (pl.col("value") / 1_000_000.0).alias("rate"),
    )
