"""Alpha360: Qlib's 360 raw-price features, each the lagged field over today's close (or volume).

The table mirrors ``Alpha360DL.get_feature_config``: for each of close, open, high, low, vwap and volume,
60 columns from lag 59 down to lag 0 (``CLOSE59 … CLOSE0``, ``OPEN59 … OPEN0``, …, ``VOLUME0``), in that
order. A price column is ``Ref($field, d)/$close``; a volume column is ``Ref($volume, d)/($volume+1e-12)``.
``Ref`` shifts by rows of the code's history (one row per trading day from its first day of data, NaN
where it did not trade), so a lag past the code's first row is NaN. ``VWAP*`` are NaN when the store has
no ``vwap`` field, as Qlib loads a missing field.

The arithmetic is Qlib's: every operand is the float32 field and every quotient is taken in float32
(NumPy on the float32 series), so the values are Qlib's bit for bit. One compiled kernel writes only the
kept rows, each feature a contiguous float32 row of the output that becomes a polars column without a copy.

Qlib's ``Alpha360`` handler normalises these features by default (its infer processors ``ProcessInf``,
``ZScoreNorm``, ``Fillna`` over every column, the label included, then the learn processors
``DropnaLabel`` and ``CSZScoreNorm`` on the label); :data:`DEFAULT_INFER` and :data:`DEFAULT_LEARN`
name that chain for :func:`hikyuu_qlib.modelling.dataset.prepare`.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt
import polars as pl
from numba import njit, prange

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.numeric import EPS
from hikyuu_qlib.factors.alpha158 import sorted_by_code_date
from hikyuu_qlib.factors.grouped import group_starts

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

#: The fields in Qlib's column order; the volume block is divided by the volume, the others by the close.
FIELDS: tuple[str, ...] = ("CLOSE", "OPEN", "HIGH", "LOW", "VWAP", "VOLUME")
#: Lags per field: 59 down to 0.
LAGS = 60
INPUTS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
#: The extra history the largest lag reads before the start date (``Ref($close, 59)``).
LOOKBACK = LAGS - 1
#: The rows after a date that the label needs (``Ref($close, -2)``).
LOOKAHEAD = 2
#: Qlib's default processors of the ``Alpha360`` handler: (processor, fields) in order. ``all`` is every
#: column, the label included, as Qlib's processors without a ``fields_group`` act.
DEFAULT_INFER: tuple[tuple[str, str], ...] = (("process_inf", "all"), ("zscore", "all"), ("fillna", "all"))
DEFAULT_LEARN: tuple[tuple[str, str], ...] = (("dropna_label", "label"), ("cs_zscore", "label"))


def alpha360_names() -> list[str]:
    """The 360 column names in Qlib's order: CLOSE59, …, CLOSE0, OPEN59, …, VOLUME0."""
    return [f"{field}{lag}" for field in FIELDS for lag in range(LAGS - 1, -1, -1)]


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _lagged_ratios(fields: F32, first: I64, take: I64, out: F32) -> None:  # pragma: no cover - compiled
    """``out[f * 60 + k, r]``: field ``f`` at lag ``59 - k`` of kept row ``take[r]`` over its close (its
    volume + 1e-12 for the volume block), NaN when the lag reaches before the code's first row
    (``first[i]``: the first row of row ``i``'s code). Float32 throughout, as Qlib computes."""
    nf = fields.shape[0]
    m = take.shape[0]
    eps = np.float32(EPS)
    nan = np.float32(np.nan)
    for col in prange(nf * LAGS):
        f = col // LAGS
        lag = LAGS - 1 - col % LAGS
        x = fields[f]
        volume = f == nf - 1
        for r in range(m):
            i = take[r]
            den = fields[nf - 1, i] + eps if volume else fields[0, i]
            j = i - lag
            out[col, r] = x[j] / den if j >= first[i] else nan


def _fields(bars: pl.DataFrame) -> F32:
    missing = [c for c in ("code", "datetime", *INPUTS) if c not in bars.columns]
    if missing:
        raise InvalidInputError(f"bars frame lacks column(s) {', '.join(missing)} needed by Alpha360")
    out = np.full((len(FIELDS), bars.height), np.nan, dtype=np.float32)
    for j, name in enumerate(FIELDS):
        column = name.lower()
        if column in bars.columns:
            out[j] = bars[column].cast(pl.Float32).fill_null(np.nan).to_numpy()
    return out


def alpha360(
    bars: pl.DataFrame, keep: pl.Series | None = None, start: dt.datetime | None = None
) -> pl.DataFrame:
    """Alpha360 over a bars frame sorted by (code, datetime).

    ``bars`` holds ``code, datetime, open, high, low, close, volume`` (and ``vwap`` when the store has
    it) as Qlib's adjusted float32 values, each code's rows one continuous history. Returns ``code,
    datetime`` and the 360 Float32 columns for every row, or only for the rows where the boolean series
    ``keep`` is true. ``start`` (the request's start date) changes nothing: no Alpha360 feature keeps
    running sums.
    """
    fields = _fields(bars)
    if not sorted_by_code_date(bars):
        raise InvalidInputError("bars frame must be sorted by (code, datetime) with unique rows")
    n = bars.height
    index = bars.select("code", "datetime")
    if keep is None:
        take = np.arange(n, dtype=np.int64)
    else:
        mask = keep.fill_null(False)
        index = index.filter(mask)
        take = np.flatnonzero(mask.to_numpy().astype(bool)).astype(np.int64)
    starts = group_starts(bars["code"])
    first = np.repeat(starts[:-1], np.diff(starts)).astype(np.int64)
    names = alpha360_names()
    out = np.empty((len(names), take.shape[0]), dtype=np.float32)
    _lagged_ratios(fields, first, take, out)
    return index.with_columns([pl.Series(name, out[j]) for j, name in enumerate(names)])
