"""Whole-market loads: every stock's bars in one frame.

HDF5 is asked only where each table's chunks lie; threads then read, inflate and unpack the chunks
straight into whole-result columns, off the GIL (:mod:`~hikyuu_qlib.stores.hikyuu.chunks`), while this
thread loads the kernels needed next. Tables in any other layout go through HDF5's own decoder
(:mod:`~hikyuu_qlib.stores.hikyuu.h5tables`). Tables are laid out in code order, so the result is
already sorted by (code, datetime). Adjustment is one pass over the whole frame with per-code affine
coefficients.

These reads take the store's files (:class:`~.files.StoreFiles`), not the store: the periods built from
the base tables (week … year, min15 …) are read code by code by :class:`~.store.HikyuuStore`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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
    StockCode,
    UnknownCodeError,
    UnsupportedKTypeError,
)
from hikyuu_qlib.domain.schema import conform_bars, empty_bars
from hikyuu_qlib.stores.hikyuu.adjust import (
    WeightEvents,
    apply_affine,
    grouped_adjust,
    grouped_coefficients,
    load_kernels,
)
from hikyuu_qlib.stores.hikyuu.chunks import FilePlan, Output, decode, plan_file
from hikyuu_qlib.stores.hikyuu.colcache import read_columns, write_columns
from hikyuu_qlib.stores.hikyuu.files import StoreFiles
from hikyuu_qlib.stores.hikyuu.frames import LOT, Columns
from hikyuu_qlib.stores.hikyuu.h5tables import OUTPUT_COLUMNS, read_tables
from hikyuu_qlib.stores.hikyuu.periods import BASE_KIND
from hikyuu_qlib.stringviews import repeat_strings

log = logging.getLogger(__name__)

#: Below this many chunks a load decodes on the calling thread alone.
MIN_CHUNKS_FOR_THREADS = 64

OnError = Literal["raise", "skip"]


def read_all(
    files: StoreFiles,
    *,
    ktype: KType = KType.DAY,
    adjust: Adjust = Adjust.NONE,
    codes: Sequence[StockCode] | None = None,
    workers: int | None = None,
    on_error: OnError = "raise",
    cache_dir: Path | None = None,
) -> pl.DataFrame:
    """Bars of every stock in the store (or of ``codes``), sorted by (code, datetime), for a base ktype
    (day, min5, min; the others are built per code by ``HikyuuStore.read_all``).

    ``workers``: threads decoding chunks (default: CPU count; 1: the calling thread). A table that
    cannot be read raises :class:`LoadErrors` naming each failed code, or with ``on_error="skip"`` is logged and
    left out.

    With ``cache_dir``, a whole-store load keeps the decoded, unadjusted columns as memory-mapped numpy
    files keyed by the store's data version: the next load (in any process) maps them instead of
    inflating every HDF5 table again, and adjustment is applied on top. A change to any file of the
    store changes the data version, so a stale cache is never read.
    """
    files.require_ktype(ktype)
    if ktype not in BASE_KIND:
        raise UnsupportedKTypeError(
            f"bulk reads serve the stored ktypes ({', '.join(k.value for k in BASE_KIND)}); "
            f"{ktype.value} bars are built code by code (HikyuuStore.read_all)"
        )
    early = _CodesAndEvents(files, adjust)
    if cache_dir is not None and codes is None:
        base, errors = _cached_base(files, ktype, Path(cache_dir), workers, early)
    else:
        base, errors = _read_base(files, ktype, codes, workers, early)
    if errors:
        if on_error == "raise":
            raise LoadErrors({n: DataFormatError(m) for n, m in errors.items()})
        for name, msg in sorted(errors.items()):
            log.warning("read_all skipped %s: %s", name, msg)
    return _finish(files, base.columns, base.names, base.lengths, adjust, early)


def read_many(
    files: StoreFiles,
    codes: Sequence[StockCode],
    *,
    ktype: KType = KType.DAY,
    adjust: Adjust = Adjust.NONE,
    dates: DateRange | None = None,
    workers: int | None = None,
) -> tuple[pl.DataFrame, dict[str, HQError]]:
    """The bars of many codes as ``HikyuuStore.read_bars`` gives them, read in one bulk pass: the
    frame of the codes that loaded (sorted by code, datetime), and each failing code's error. A ktype
    the files do not hold, or a period built from them (week …), fails every code.

    Adjustment is relative to the requested window, as for one code: the bars are cut to ``dates``
    first, then adjusted for the events inside each code's own window."""
    wanted = sorted(set(codes))
    try:
        files.require_ktype(ktype)
        if ktype not in BASE_KIND:
            raise UnsupportedKTypeError(f"{ktype.value} bars are built code by code, not in a bulk pass")
    except HQError as exc:
        return empty_bars(), {str(c): exc for c in wanted}
    early = _CodesAndEvents(files, adjust) if dates is None else None
    base, failed = _read_base(files, ktype, wanted, workers, early, missing="report")
    errors: dict[str, HQError] = {}
    known = files.stock_index()
    for name, message in failed.items():
        if name not in base.missing:
            errors[name] = DataFormatError(message)
        elif StockCode.parse(name) in known:
            errors[name] = NoBarsError(message)  # listed, but no table: "without bars"
        else:
            errors[name] = UnknownCodeError(message)
    cols, names, lengths = base.columns, base.names, base.lengths
    if dates is not None:
        cols, lengths = _window(cols, lengths, dates)
    return _finish(files, cols, names, lengths, adjust, early), errors


def _window(cols: Columns, lengths: np.ndarray, dates: DateRange) -> tuple[Columns, np.ndarray]:
    """The rows of every code inside ``dates``, and the codes' new row counts."""
    lo_ms, hi_ms = dates.ms_bounds()
    keep = (cols.datetime >= lo_ms) & (cols.datetime <= hi_ms)
    kept = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
    ends = np.cumsum(lengths)
    return cols.take(keep), kept[ends] - kept[ends - lengths]


def _finish(
    files: StoreFiles,
    cols: Columns,
    names: list[str],
    lengths: np.ndarray,
    adjust: Adjust,
    early: _CodesAndEvents | None = None,
) -> pl.DataFrame:
    """The bars frame of decoded columns: the code column, and the adjustment when asked."""
    if not names or cols.datetime.size == 0:
        return empty_bars()
    early = early or _CodesAndEvents(files, adjust)
    code = early.codes(names, lengths)
    if adjust is Adjust.NONE:
        return conform_bars(cols.frame(code))
    grouping = early.grouping(names, lengths)
    bar_ms = np.ascontiguousarray(cols.datetime, dtype=np.int64)
    if len(cols) < AFFINE_KERNEL_MIN_ROWS:
        a, b = grouped_coefficients(bar_ms, *grouping, adjust)
        return apply_affine(conform_bars(cols.frame(code)), a, b)
    prices = (cols.open, cols.high, cols.low, cols.close, cols.volume, cols.amount)
    # in place when the columns are ours (decoded just now), else (mapped from the cache) into new ones
    out = (
        cols
        if all(x.flags.writeable for x in prices)
        else Columns(cols.datetime, *(np.empty_like(x) for x in prices))
    )
    grouped_adjust(
        bar_ms, *grouping, adjust, prices, (out.open, out.high, out.low, out.close, out.volume, out.amount)
    )
    return conform_bars(out.frame(code))


Grouping = tuple[np.ndarray, np.ndarray, WeightEvents, np.ndarray, np.ndarray]


class _CodesAndEvents:
    """The code column and the weight events of a load, built on this thread while the chunks decode
    (the decoding threads keep both cores busy; building these afterwards would leave one idle). They
    are used when the load keeps every table it planned, else built again for the tables kept."""

    def __init__(self, files: StoreFiles, adjust: Adjust) -> None:
        self.files, self.adjust = files, adjust
        self.names: list[str] | None = None
        self.lengths: np.ndarray | None = None
        self._codes: pl.Series | None = None
        self._grouping: Grouping | None = None

    def __call__(self, names: list[str], lengths: np.ndarray) -> None:
        if self.adjust is not Adjust.NONE and int(lengths.sum()) >= AFFINE_KERNEL_MIN_ROWS:
            load_kernels()  # the adjustment kernels: loading them costs a few hundred ms the first time
        self.names, self.lengths = names, lengths
        self._codes = repeat_strings("code", names, lengths)
        if self.adjust is not Adjust.NONE:
            self._grouping = _grouped_events(self.files, names, lengths)

    def codes(self, names: list[str], lengths: np.ndarray) -> pl.Series:
        if names is self.names and lengths is self.lengths and self._codes is not None:
            return self._codes
        return repeat_strings("code", names, lengths)

    def grouping(self, names: list[str], lengths: np.ndarray) -> Grouping:
        if names is self.names and lengths is self.lengths and self._grouping is not None:
            return self._grouping
        return _grouped_events(self.files, names, lengths)


# Below this many bars polars applies the maps faster than loading the compiled kernel in a new process.
AFFINE_KERNEL_MIN_ROWS = 1_000_000


@dataclass
class DecodedTables:
    """Decoded, unadjusted columns of some tables, sorted by (table, datetime): the tables' names (codes)
    and row counts, and which asked-for codes had no table (``missing``)."""

    columns: Columns
    names: list[str]
    lengths: np.ndarray
    missing: set[str] = field(default_factory=set)


Missing = Literal["raise", "report"]


def _cached_base(
    files: StoreFiles,
    ktype: KType,
    cache_dir: Path,
    workers: int | None,
    early: Callable[[list[str], np.ndarray], None] | None = None,
) -> tuple[DecodedTables, dict[str, str]]:
    """The decoded base columns from the cache, or read (and cached when complete), and the tables that
    failed (by name)."""
    key = hashlib.sha256(f"{files.source}|{files.data_version()}|{ktype.value}".encode()).hexdigest()[:20]
    target = cache_dir / "hikyuu-bulk" / key
    cached = read_columns(target)
    if cached is not None:
        log.info("read_all: mapped decoded columns from %s", target)
        return DecodedTables(*cached), {}
    base, errors = _read_base(files, ktype, None, workers, early)
    if not errors:  # a load that left failing tables out is incomplete: never cache it
        write_columns(target, base.columns, base.names, base.lengths)
    return base, errors


def _read_base(
    files: StoreFiles,
    ktype: KType,
    codes: Sequence[StockCode] | None,
    workers: int | None,
    early: Callable[[list[str], np.ndarray], None] | None = None,
    missing: Missing = "raise",
) -> tuple[DecodedTables, dict[str, str]]:
    """Decoded, unadjusted columns of every (or the given) table, with their codes and row counts; and
    the tables that failed, left out of the columns (by name; a file that cannot be listed by path).

    ``early(names, lengths)`` runs on this thread while the chunks decode. Asked-for codes the store
    does not know raise :class:`UnknownCodeError`, known ones without a table :class:`NoBarsError`; with
    ``missing="report"`` both join the failures (listed in ``DecodedTables.missing``)."""
    tables, errors, absent = _tables(files, BASE_KIND[ktype], codes, missing)
    plans: list[FilePlan] = []
    all_names: list[str] = []
    all_rows: list[int] = []
    row_lo: list[int] = []
    for path, names, _ in tables:
        found = plan_file(path, names)
        errors.update({names[i]: m for i, m in found.errors.items()})
        plans.append(found)
        row_lo.append(sum(all_rows))
        all_names += names
        all_rows += found.rows
    lengths = np.asarray(all_rows, dtype=np.int64)
    total = int(lengths.sum())
    out = Output(np.empty(total, dtype=np.int64), np.empty((6, total), dtype=np.float64))
    columns = dict(zip(OUTPUT_COLUMNS, (out.datetime, *out.values), strict=True))
    for (path, names, scales), found, lo in zip(tables, plans, row_lo, strict=True):
        if found.fallback:  # odd layouts: HDF5 decodes them, one after another
            starts = lo + np.concatenate(([0], np.cumsum(found.rows)))
            pick = found.fallback
            errors.update(
                read_tables(
                    path,
                    [names[i] for i in pick],
                    [found.rows[i] for i in pick],
                    [scales[i] for i in pick],
                    [int(starts[i]) for i in pick],
                    columns,
                )
            )
    threads = max(1, workers or os.cpu_count() or 1)
    if sum(len(p.size) for p in plans) < MIN_CHUNKS_FOR_THREADS:
        threads = 1
    meanwhile = (lambda: early(all_names, lengths)) if early is not None else None
    failed = decode(plans, row_lo, [scales for _, _, scales in tables], out, threads, while_waiting=meanwhile)
    for (_, names, _), fails in zip(tables, failed, strict=True):
        errors.update({names[i]: message for i, message in fails.items()})
    if errors:
        keep_table = np.array([n not in errors for n in all_names], dtype=bool)
        keep_rows = np.repeat(keep_table, lengths)
        columns = {c: v[keep_rows] for c, v in columns.items()}
        all_names = [n for n, k in zip(all_names, keep_table, strict=True) if k]
        lengths = lengths[keep_table]
    cols = Columns(*(columns[f] for f in OUTPUT_COLUMNS))
    errors.update(absent)
    return DecodedTables(_sort_within_codes(cols, lengths), all_names, lengths, set(absent)), errors


def _tables(
    files: StoreFiles, kind: str, codes: Sequence[StockCode] | None, missing: Missing = "raise"
) -> tuple[list[tuple[str, list[str], list[float]]], dict[str, str], dict[str, str]]:
    """Per market file: its path, the tables to read (every listed code, or those asked) and their
    volume scales; the files that cannot be listed (by path, or by code for codes asked for); and the
    asked-for codes without a table (by code; raised instead unless ``missing="report"``)."""
    index = files.stock_index()
    wanted: set[StockCode] | None = None
    absent: dict[str, str] = {}
    if codes is not None:
        wanted = {StockCode.parse(c) for c in codes}
        unknown = sorted(str(c) for c in wanted if c not in index)
        if unknown and missing == "raise":
            raise UnknownCodeError(f"unknown code(s) {', '.join(unknown[:20])}: not in {files.layout.db}")
        absent = {c: f"unknown code {c}: not in {files.layout.db} and no table" for c in unknown}
        wanted -= {StockCode.parse(c) for c in unknown}
    tables: list[tuple[str, list[str], list[float]]] = []
    file_errors: dict[str, str] = {}
    found: set[StockCode] = set()
    for market in sorted(Market, key=lambda m: m.value):
        handle = files.h5(market, kind)
        if handle is None:
            continue
        names: list[str] = []
        scales: list[float] = []
        try:
            listed = handle.names("data")
        except DataFormatError as exc:  # the whole file is unreadable: it fails, the others load
            if wanted is None:
                file_errors[str(handle.path)] = str(exc)
            else:
                file_errors.update({str(c): str(exc) for c in wanted if c.market is market})
                found |= {c for c in wanted if c.market is market}
            continue
        for name in listed:
            try:
                code = StockCode.parse(name)
            except ValueError:
                continue
            row = index.get(code)
            if row is None or (wanted is not None and code not in wanted):
                continue
            found.add(code)
            names.append(name)
            scales.append(LOT if (kind == "day" and row.volume_in_lots) else 1.0)
        tables.append((str(handle.path), names, scales))
    if wanted is not None and wanted - found:
        lacking = sorted(str(c) for c in wanted - found)
        where = files.layout.datadir
        if missing == "raise":
            raise NoBarsError(f"no {kind} table for code(s) {', '.join(lacking[:20])} in {where}")
        absent.update({c: f"{c}: no {kind} table in {where}" for c in lacking})
    return tables, file_errors, absent


def _sort_within_codes(cols: Columns, lengths: np.ndarray) -> Columns:
    """Tables are expected in time order; sort the rare code that is not."""
    if cols.datetime.size < 2:
        return cols
    back = cols.datetime[1:] < cols.datetime[:-1]
    ends = np.cumsum(lengths)[:-1] - 1
    back[ends[(ends >= 0) & (ends < back.size)]] = False  # crossing from one code to the next
    if not back.any():
        return cols
    code_ix = np.repeat(np.arange(lengths.size), lengths)
    order = np.lexsort((cols.datetime, code_ix))
    return cols.take(order)


def _grouped_events(
    files: StoreFiles, names: list[str], lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, WeightEvents, np.ndarray, np.ndarray]:
    """Every code's rows and weight events at once, as the grouped adjustment kernels take them:
    ``(row_lo, row_hi, events, ev_lo, ev_hi)``."""
    index = files.stock_index()
    ids = np.array([index[StockCode.parse(n)].stockid for n in names], dtype=np.int64)
    weights = files.base_info.weights(ids.tolist())
    col = {c: weights.get_column(c).to_numpy() for c in weights.columns if c not in ("stockid", "date")}
    sid = weights.get_column("stockid").to_numpy().astype(np.int64)
    date_ms = weights.get_column("date").cast(pl.Int64).to_numpy()
    events = WeightEvents.from_arrays(
        date_ms,
        col["count_as_gift"],
        col["count_for_sell"],
        col["price_for_sell"],
        col["bonus"],
        col["count_of_increasement"],
        col["suogu"],
    )
    kept_sid = sid[events.kept] if events.kept is not None else sid
    ev_lo = np.searchsorted(kept_sid, ids, side="left").astype(np.int64)
    ev_hi = np.searchsorted(kept_sid, ids, side="right").astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    return offsets[:-1], offsets[1:], events, ev_lo, ev_hi
