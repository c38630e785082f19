"""Alpha158: Qlib's 158 features, declared as a table and computed over the whole universe at once.

The table mirrors ``Alpha158DL.get_feature_config`` (kbar, price at lag 0, then 29 rolling families
over windows 5, 10, 20, 30, 60), with Qlib's names, order and expressions, quirks included:
``ROC`` is ``Ref($close, d)/$close``, Qlib's ``1e-12`` epsilons
(:data:`~hikyuu_qlib.domain.numeric.EPS`) sit where Qlib puts them, and
``VWAP0`` is NaN when the store has no ``vwap`` field (as Qlib loads a missing field).

The engine follows Qlib's arithmetic: element-wise operators run in float32 on the float32 fields
(as NumPy does in Qlib), rolling operators run in float64 (as pandas does), and the result is cast to
float32 like ``D.features``. One fused compiled kernel (:mod:`hikyuu_qlib.factors.alpha158_kernel`)
runs every rolling family over all windows code by code, in parallel across codes, and writes only
the kept rows straight into the float32 output, whose rows become the polars columns without a copy.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.numeric import EPS
from hikyuu_qlib.factors.alpha158_kernel import FAMILIES, rolling_features
from hikyuu_qlib.factors.grouped import group_starts
from hikyuu_qlib.factors.rolling import I64

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
WINDOWS: tuple[int, ...] = (5, 10, 20, 30, 60)
KBAR: tuple[str, ...] = ("KMID", "KLEN", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2")
PRICE: tuple[str, ...] = ("OPEN0", "HIGH0", "LOW0", "VWAP0")
ROLLING: tuple[str, ...] = FAMILIES
INPUTS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
#: The extra history Qlib loads before the start date for Alpha158 (its largest extended window).
LOOKBACK = 60
#: The rows after a date that the label needs (``Ref($close, -2)``).
LOOKAHEAD = 2


@dataclass(frozen=True, slots=True)
class Feature:
    """One Alpha158 column: its name, family and window (0 for the non-rolling ones)."""

    name: str
    family: str
    window: int


def alpha158_table() -> list[Feature]:
    """The 158 features in Qlib's column order."""
    table = [Feature(name, "KBAR", 0) for name in KBAR]
    table += [Feature(name, "PRICE", 0) for name in PRICE]
    table += [Feature(f"{family}{w}", family, w) for family in ROLLING for w in WINDOWS]
    return table


def alpha158_names() -> list[str]:
    """The 158 column names in Qlib's order: KMID, KLEN, … VSUMD60."""
    return [f.name for f in alpha158_table()]


def _shift1(x: F32, starts: I64) -> F32:
    """``Ref(x, 1)`` within each code."""
    out = np.empty_like(x)
    out[1:] = x[:-1]
    out[starts[:-1]] = np.nan  # each code's first row (group_starts makes no empty group)
    return out


def _inputs(f: dict[str, F32], starts: I64) -> F32:
    """The float32 series the rolling families read, computed element-wise as Qlib (NumPy) does."""
    c, v = f["close"], f["volume"]
    one = np.float32(1)
    fields = np.empty((8, c.shape[0]), dtype=np.float32)
    fields[0], fields[1], fields[2], fields[3] = c, f["high"], f["low"], v
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log(v + one, out=fields[4])
        np.divide(c, _shift1(c, starts), out=fields[5])
        np.log(v / _shift1(v, starts) + one, out=fields[6])
        np.multiply(np.abs(fields[5] - one), v, out=fields[7])
    return fields


def _kbar(f: dict[str, F32], take: I64 | None, out: F32) -> None:
    """KBAR and PRICE (float32 element-wise, like Qlib) of the kept rows into ``out[0:13]``."""

    def kept(name: str) -> F32:
        x = f[name]
        return x if take is None else x[take]

    o, h, lo, c = kept("open"), kept("high"), kept("low"), kept("close")
    with np.errstate(divide="ignore", invalid="ignore"):
        rng = (h - lo) + np.float32(EPS)
        up = h - np.maximum(o, c)
        down = np.minimum(o, c) - lo
        shadow = (np.float32(2) * c - h) - lo
        body = c - o
        values = (
            body / o, (h - lo) / o, body / rng, up / o, up / rng, down / o, down / rng, shadow / o,
            shadow / rng,
        )  # fmt: skip
        for j, value in enumerate(values):
            out[j] = value
        for j, field in enumerate(("open", "high", "low", "vwap"), start=len(KBAR)):
            if field in f:
                np.divide(kept(field), c, out=out[j])
            else:
                out[j] = np.nan


def _fields(bars: pl.DataFrame) -> dict[str, F32]:
    missing = [c for c in ("code", "datetime", *INPUTS) if c not in bars.columns]
    if missing:
        raise InvalidInputError(f"bars frame lacks column(s) {', '.join(missing)} needed by Alpha158")
    names = [*INPUTS, *(["vwap"] if "vwap" in bars.columns else [])]
    return {
        name: np.ascontiguousarray(bars[name].cast(pl.Float32).fill_null(np.nan).to_numpy()) for name in names
    }


def sorted_by_code_date(bars: pl.DataFrame) -> bool:
    """Whether ``bars`` is sorted by (code, datetime) with unique rows."""
    code, prev_code = pl.col("code"), pl.col("code").shift(1)
    later = (code > prev_code) | ((code == prev_code) & (pl.col("datetime") > pl.col("datetime").shift(1)))
    return bool(bars.select(later.fill_null(True).all()).item())


def origins(bars: pl.DataFrame, starts: I64, start: dt.datetime | None) -> I64:
    """Per code (group ``g`` of ``starts``): its first row on or after ``start`` (its first row without
    ``start``; its end when every row is before it)."""
    first = starts[:-1].copy()
    if start is None or bars.height == 0:
        return first
    when = bars["datetime"].cast(pl.Datetime("us")).to_numpy().view(np.int64)
    at = np.datetime64(start, "us").astype(np.int64)
    for g in range(first.shape[0]):
        s, e = int(starts[g]), int(starts[g + 1])
        first[g] = s + int(np.searchsorted(when[s:e], at, side="left"))
    return first


def alpha158(
    bars: pl.DataFrame, keep: pl.Series | None = None, start: dt.datetime | None = None
) -> pl.DataFrame:
    """Alpha158 over a bars frame sorted by (code, datetime).

    ``bars`` holds ``code, datetime, open, high, low, close, volume`` (and ``vwap`` when the store has
    it) as Qlib's adjusted float32 values. Each code's rows are one continuous history: rolling
    windows start at its first row. Returns ``code, datetime`` and the 158 Float32 columns for every
    row, or only for the rows where the boolean series ``keep`` is true.

    ``start`` is the start date of the request (Qlib's ``start_time``): a rolling feature over ``w`` rows
    then keeps its running sums from ``w - 1`` rows before it, where Qlib's query of that expression
    starts, so that the rounding of those sums is Qlib's (see :func:`origins`); without it, from each
    code's first row.
    """
    fields = _fields(bars)
    if not sorted_by_code_date(bars):
        raise InvalidInputError("bars frame must be sorted by (code, datetime) with unique rows")
    n = bars.height
    index = bars.select("code", "datetime")
    if keep is None:
        rows = np.arange(n, dtype=np.int64)
        take = None
    else:
        mask = keep.fill_null(False)
        index = index.filter(mask)
        flags = mask.to_numpy().astype(bool)
        take = np.flatnonzero(flags).astype(np.int64)
        rows = np.full(n, -1, dtype=np.int64)
        rows[take] = np.arange(take.shape[0], dtype=np.int64)
    names = alpha158_names()
    # one contiguous float32 row per feature: each becomes a polars column without a copy
    out = np.empty((len(names), index.height), dtype=np.float32)
    _kbar(fields, take, out)
    starts = group_starts(bars["code"])
    windows = np.asarray(WINDOWS, dtype=np.int64)
    rolling_features(_inputs(fields, starts), starts, origins(bars, starts, start), windows, rows, out)
    return index.with_columns([pl.Series(name, out[j]) for j, name in enumerate(names)])
