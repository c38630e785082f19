"""Whole-market loads: every stock's bars in one frame, read by a process pool.

h5py holds the GIL (and HDF5 its own global lock), so threads do not help; the tables of each file
are split into contiguous, size-balanced runs that pool workers read into numpy columns
(:mod:`~hikyuu_qlib.stores.hikyuu.bulkio`). Runs come back in code order, so the result is built once
by concatenation, already sorted by (code, datetime). Adjustment is vectorised over the whole frame
with per-code affine coefficients.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl

from hikyuu_qlib.domain import (
    Adjust,
    DataFormatError,
    KType,
    LoadErrors,
    Market,
    StockCode,
    UnknownCodeError,
)
from hikyuu_qlib.domain.schema import conform_bars, empty_bars
from hikyuu_qlib.stores.hikyuu.adjust import WeightEvents, affine_coefficients
from hikyuu_qlib.stores.hikyuu.basedb import group_bounds
from hikyuu_qlib.stores.hikyuu.bulkio import Chunk, read_chunk
from hikyuu_qlib.stores.hikyuu.frames import LOT, Columns
from hikyuu_qlib.stores.hikyuu.periods import BASE_KIND

if TYPE_CHECKING:
    from hikyuu_qlib.stores.hikyuu.store import HikyuuStore

log = logging.getLogger(__name__)

#: Below this many tables a load runs in-process (pool start-up would dominate).
MIN_TABLES_FOR_POOL = 64
CHUNKS_PER_WORKER = 4

OnError = Literal["raise", "skip"]


def read_all(
    store: HikyuuStore,
    *,
    ktype: KType = KType.DAY,
    adjust: Adjust = Adjust.NONE,
    codes: Sequence[StockCode] | None = None,
    workers: int | None = None,
    on_error: OnError = "raise",
    mp_context: str | None = None,
) -> pl.DataFrame:
    """Bars of every stock in the store (or of ``codes``), sorted by (code, datetime).

    ``workers``: processes to use (default: CPU count; 1 reads in-process). A table that cannot be
    read raises :class:`LoadErrors` naming each failed code, or with ``on_error="skip"`` is logged and
    left out. Derived ktypes (week … year, min15 …) are built per code through ``read_bars``.
    """
    if ktype not in BASE_KIND:
        return _read_derived(store, ktype, adjust, codes, on_error)
    store._require_ktype(ktype)
    kind = BASE_KIND[ktype]
    index = store.base_info.stock_index()
    wanted: set[StockCode] | None = None
    if codes is not None:
        wanted = {StockCode.parse(c) for c in codes}
        unknown = sorted(str(c) for c in wanted if c not in index)
        if unknown:
            raise UnknownCodeError(f"unknown code(s) {', '.join(unknown[:20])}: not in {store.layout.db}")

    tasks: list[Task] = []
    found: set[StockCode] = set()
    n_workers = max(1, workers or os.cpu_count() or 1)
    for market in sorted(Market, key=lambda m: m.value):
        handle = store.h5(market, kind)
        if handle is None:
            continue
        names: list[str] = []
        scales: list[float] = []
        for name in handle.names("data"):
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
        tasks += _split(str(handle.path), names, scales, n_workers * CHUNKS_PER_WORKER)
    if wanted is not None and wanted - found:
        missing = sorted(str(c) for c in wanted - found)
        where = store.layout.datadir
        raise UnknownCodeError(f"no {kind} table for code(s) {', '.join(missing[:20])} in {where}")

    chunks = _run(tasks, n_workers, mp_context)
    errors = {name: msg for ch in chunks for name, msg in ch.errors.items()}
    if errors:
        if on_error == "raise":
            raise LoadErrors({n: DataFormatError(m) for n, m in errors.items()})
        for name, msg in sorted(errors.items()):
            log.warning("read_all skipped %s: %s", name, msg)
    chunks = [c for c in chunks if c.names]
    if not chunks:
        return empty_bars()
    names = [n for c in chunks for n in c.names]
    lengths = np.concatenate([c.lengths for c in chunks])
    cols = Columns(*(np.concatenate([getattr(c, f) for c in chunks]) for f in _FIELDS))
    cols = _sort_within_codes(cols, lengths)
    if adjust is not Adjust.NONE:
        _adjust_in_place(store, cols, names, lengths, adjust)
    code_col = pl.Series("code", names, dtype=pl.String).gather(
        pl.Series(np.repeat(np.arange(len(names), dtype=np.int64), lengths))
    )
    return conform_bars(cols.frame(code_col))


_FIELDS = ("datetime", "open", "high", "low", "close", "volume", "amount")


Task = tuple[str, list[str], list[float]]


def _split(path: str, names: list[str], scales: list[float], parts: int) -> list[Task]:
    if not names:
        return []
    bounds = np.linspace(0, len(names), min(parts, len(names)) + 1).round().astype(int)
    return [
        (path, names[lo:hi], scales[lo:hi]) for lo, hi in itertools.pairwise(bounds) if hi > lo
    ]


def _run(tasks: list[Task], workers: int, context: str | None) -> list[Chunk]:
    total = sum(len(t[1]) for t in tasks)
    if workers <= 1 or total < MIN_TABLES_FOR_POOL or len(tasks) <= 1:
        return [read_chunk(*t) for t in tasks]
    ctx = multiprocessing.get_context(context or _default_context())
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
        futures = [pool.submit(read_chunk, *t) for t in tasks]
        return [f.result() for f in futures]


def _default_context() -> str:
    return os.environ.get("HQ_MP_CONTEXT", "spawn")


def _sort_within_codes(cols: Columns, lengths: np.ndarray) -> Columns:
    """Tables are expected in time order; sort the rare code that is not."""
    if cols.datetime.size < 2:
        return cols
    back = np.diff(cols.datetime) < 0
    ends = np.cumsum(lengths)[:-1] - 1
    back[ends[ends < back.size]] = False  # crossing from one code to the next
    if not back.any():
        return cols
    code_ix = np.repeat(np.arange(lengths.size), lengths)
    order = np.lexsort((cols.datetime, code_ix))
    return cols.take(order)


def _adjust_in_place(
    store: HikyuuStore, cols: Columns, names: list[str], lengths: np.ndarray, adjust: Adjust
) -> None:
    index = store.base_info.stock_index()
    ids = [index[StockCode.parse(n)].stockid for n in names]
    weights = store.base_info.weights(ids)
    if weights.height == 0:
        return
    sid = weights.get_column("stockid").to_numpy()
    bounds = group_bounds(sid)
    date_ms = weights.get_column("date").cast(pl.Int64).to_numpy()
    arrays = {c: weights.get_column(c).to_numpy() for c in weights.columns if c not in ("stockid", "date")}
    a = np.ones(cols.datetime.size, dtype=np.float64)
    b = np.zeros(cols.datetime.size, dtype=np.float64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    for i, stockid in enumerate(ids):  # one pass per stock with weight events
        span = bounds.get(stockid)
        if span is None:
            continue
        lo, hi = span
        events = WeightEvents.from_arrays(
            date_ms[lo:hi], arrays["count_as_gift"][lo:hi], arrays["count_for_sell"][lo:hi],
            arrays["price_for_sell"][lo:hi], arrays["bonus"][lo:hi], arrays["count_of_increasement"][lo:hi],
            arrays["suogu"][lo:hi],
        )
        r0, r1 = int(offsets[i]), int(offsets[i + 1])
        a[r0:r1], b[r0:r1] = affine_coefficients(cols.datetime[r0:r1], events, adjust)
    close = cols.close
    ratio = np.divide(close * a + b, close * a, out=np.ones_like(close), where=close != 0)
    cols.amount = cols.amount * ratio
    cols.open = cols.open * a + b
    cols.high = cols.high * a + b
    cols.low = cols.low * a + b
    cols.close = close * a + b
    cols.volume = cols.volume / a


def _read_derived(
    store: HikyuuStore, ktype: KType, adjust: Adjust, codes: Sequence[StockCode] | None, on_error: OnError
) -> pl.DataFrame:
    if codes is None:
        frame = store.stocks(valid=None)
        codes = [StockCode.parse(c) for c in frame.get_column("code").to_list()]
        only_present = True
    else:
        only_present = False
    frames: list[pl.DataFrame] = []
    errors: dict[str, BaseException] = {}
    for code in sorted(StockCode.parse(c) for c in codes):  # one read per stock
        try:
            frames.append(store.read_bars(code, ktype=ktype, adjust=adjust))
        except UnknownCodeError:
            if not only_present:
                raise
        except DataFormatError as exc:
            errors[str(code)] = exc
    if errors and on_error == "raise":
        raise LoadErrors(errors)
    return pl.concat(frames) if frames else empty_bars()
