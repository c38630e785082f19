"""TDX (Tongdaxin) ``.day`` files and their import into a Hikyuu-layout store.

A ``.day`` file is a run of 32-byte little-endian records::

    date u32 (YYYYMMDD), open u32, high u32, low u32, close u32 (price x 100),
    amount f32 (yuan), volume u32 (shares for stocks), reserved u32

The import follows Hikyuu's own TDX importer: prices x10 into Hikyuu's x1000 integers,
``transAmount = round(amount / 1000)`` (thousands of yuan), ``transCount = round(volume / 100)``
(lots) for everything but indices, whose volume is kept as is; records with a zero price or with
open/close outside [low, high] are skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain import DataFormatError, HQError, Market, StockCode, StockType, StoreNotFoundError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.ports import Progress
from hikyuu_qlib.stores.hikyuu.coderules import stock_type_of
from hikyuu_qlib.stores.hikyuu.h5 import ymdhm_to_ms
from hikyuu_qlib.stores.hikyuu.writer import WRITE_DTYPE, HikyuuWriter
from hikyuu_qlib.stores.reports import BatchReport

log = logging.getLogger(__name__)

TDX_DAY_DTYPE = np.dtype(
    [
        ("date", "<u4"),
        ("open", "<u4"),
        ("high", "<u4"),
        ("low", "<u4"),
        ("close", "<u4"),
        ("amount", "<f4"),
        ("volume", "<u4"),
        ("reserved", "<u4"),
    ]
)
RECORD_SIZE = TDX_DAY_DTYPE.itemsize  # 32


@dataclass(slots=True)
class ImportReport(BatchReport):
    """What :func:`import_tdx` did: ``ok``, the codes imported, with the bars of each (``imported``) and
    the records skipped (``skipped_records``); ``failed``, the codes whose file failed
    (``"ErrorType: message"``)."""

    out_dir: Path
    imported: dict[str, int] = field(default_factory=dict)
    skipped_records: dict[str, int] = field(default_factory=dict)

    @property
    def bars(self) -> int:
        return sum(self.imported.values())


def read_tdx_records(path: Path) -> npt.NDArray[Any]:
    """The raw records of a ``.day`` file; :class:`DataFormatError` names the file when it is corrupt."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise StoreNotFoundError(f"TDX file not found: {path}") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read TDX file ({exc})") from None
    if len(blob) % RECORD_SIZE:
        raise DataFormatError(
            f"{path}: size {len(blob)} is not a multiple of {RECORD_SIZE} (truncated or not a .day file)"
        )
    rec = np.frombuffer(blob, dtype=TDX_DAY_DTYPE)
    if rec.size:
        ymdhm_to_ms(rec["date"].astype(np.int64) * 10000, where=f"{path}: field date")
        if bool(np.any(np.diff(rec["date"].astype(np.int64)) <= 0)):
            raise DataFormatError(f"{path}: field date is not strictly increasing")
    return rec


def read_tdx_day(path: Path) -> pl.DataFrame:
    """A ``.day`` file as a frame: datetime (midnight), open/high/low/close in yuan (raw / 100),
    amount in yuan, volume as stored (shares for stocks). No rows are dropped."""
    rec = read_tdx_records(path)
    ms = ymdhm_to_ms(rec["date"].astype(np.int64) * 10000, where=str(path))
    return pl.DataFrame(
        {
            "datetime": pl.Series(ms, dtype=pl.Int64).cast(DATETIME),
            "open": rec["open"] / 100.0,
            "high": rec["high"] / 100.0,
            "low": rec["low"] / 100.0,
            "close": rec["close"] / 100.0,
            "amount": rec["amount"].astype(np.float64),
            "volume": rec["volume"].astype(np.float64),
        }
    )


def hikyuu_records(rec: npt.NDArray[Any], *, is_index: bool) -> tuple[npt.NDArray[Any], int]:
    """Hikyuu records from TDX records, as Hikyuu's importer converts them; also the rows skipped."""
    o, h, lo, c = (rec[f].astype(np.int64) for f in ("open", "high", "low", "close"))
    good = (o > 0) & (h > 0) & (lo > 0) & (c > 0) & (h >= o) & (o >= lo) & (h >= c) & (c >= lo)
    r = rec[good]
    out = np.empty(r.shape[0], dtype=WRITE_DTYPE)
    out["datetime"] = r["date"].astype(np.uint64) * 10000
    out["openPrice"] = r["open"].astype(np.uint32) * 10
    out["highPrice"] = r["high"].astype(np.uint32) * 10
    out["lowPrice"] = r["low"].astype(np.uint32) * 10
    out["closePrice"] = r["close"].astype(np.uint32) * 10
    out["transAmount"] = np.round(r["amount"].astype(np.float64) * 0.001)
    volume = r["volume"].astype(np.float64)
    out["transCount"] = volume if is_index else np.round(volume * 0.01)
    return out, int((~good).sum())


def import_tdx(
    vipdoc_dir: Path,
    out_dir: Path,
    progress: Progress | None = None,
    base_db: Path | None = None,
) -> ImportReport:
    """Build a Hikyuu-layout store in ``out_dir`` from every ``vipdoc/{sh,sz,bj}/lday/*.day``.

    Stock rows are copied from ``base_db`` (a Hikyuu ``stock.db``) when given, else derived from code
    rules. A corrupt file is recorded in the report's ``failed`` and the others still import.
    """
    vipdoc_dir = Path(vipdoc_dir)
    if not vipdoc_dir.is_dir():
        raise StoreNotFoundError(f"TDX vipdoc directory not found: {vipdoc_dir}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[tuple[StockCode, Path]] = []
    for market in Market:
        folder = vipdoc_dir / market.value.lower() / "lday"
        for path in sorted(folder.glob("*.day")) if folder.is_dir() else []:
            try:
                files.append((StockCode.parse(path.stem), path))
            except HQError:
                log.warning("skipping %s: the file name is not a stock code", path)
    report = ImportReport(out_dir)
    types: dict[StockCode, int] = {}
    if base_db is not None:
        if not Path(base_db).is_file():
            raise StoreNotFoundError(f"base-info database not found: {base_db}")
        shutil.copyfile(base_db, out_dir / "stock.db")
        types = _types_from_db(out_dir / "stock.db")
    derived: list[dict[str, Any]] = []
    with HikyuuWriter(out_dir) as writer:
        for done, (code, path) in enumerate(files, start=1):  # one file per stock
            kind = types.get(code)
            if kind is None:
                kind = int(stock_type_of(code) or StockType.A_SHARE)
            try:
                rec = read_tdx_records(path)
                hk, skipped = hikyuu_records(rec, is_index=kind == StockType.INDEX.value)
                if hk.shape[0]:
                    writer.write_records(code, hk, "day")
                report.ok.append(str(code))
                report.imported[str(code)] = int(hk.shape[0])
                if skipped:
                    report.skipped_records[str(code)] = skipped
                if code not in types and hk.shape[0]:
                    derived.append(_stock_row(code, kind, hk))
            except HQError as exc:
                log.warning("TDX import of %s failed: %s", path, exc)
                report.fail(str(code), exc)
            if progress is not None:
                progress(done, len(files), str(code))
        if derived:
            writer.write_stocks(pl.DataFrame(derived, infer_schema_length=None))
    return report


def _stock_row(code: StockCode, kind: int, hk: npt.NDArray[Any]) -> dict[str, Any]:
    first = int(hk["datetime"][0]) // 10000
    start = dt.date(first // 10000, first // 100 % 100, first % 100)
    return {"code": str(code), "name": code.symbol, "type": kind, "valid": True, "start_date": start}


def _types_from_db(db: Path) -> dict[StockCode, int]:
    out: dict[StockCode, int] = {}
    try:
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT m.market, s.code, s.type FROM Stock s JOIN Market m ON m.marketid = s.marketid"
            ).fetchall()
    except sqlite3.Error as exc:
        raise DataFormatError(f"{db}: not a Hikyuu stock.db ({exc})") from None
    for market, code, kind in rows:
        try:
            out[StockCode.parse(f"{market}{code}")] = int(kind)
        except HQError:
            continue
    return out
