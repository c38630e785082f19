"""Market data of a backtest as dense day × stock arrays, read from a feature source in one query.

The source is a :class:`~hikyuu_qlib.ports.FeatureSource` (a Qlib store, or any store's bars through the
bars bridge). Rows follow Qlib's exchange: values of a code outside its spans of the universe ``all``
(a Qlib store's ``instruments/all.txt``) are absent (NaN close, i.e. suspended), exactly as
``D.features("all", ...)`` masks them for pyqlib's exchange.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain import DateRange, InvalidInputError, NotFoundError, StockCode
from hikyuu_qlib.ports import FeatureSource

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
Dates = npt.NDArray[np.datetime64]
FIELDS = ("close", "open", "factor", "volume")


@dataclass(frozen=True, slots=True, eq=False)
class MarketArrays:
    """Prices of ``codes`` (columns) on the trading ``dates`` (rows) of a backtest.

    ``signal_dates[i]`` is the trading day before ``dates[i]`` (NaT when the calendar has none): the
    day whose prediction is traded on ``dates[i]``. ``prev_close`` holds each code's close on
    ``signal_dates[0]``. ``change`` is ``$change`` as the source serves it: a Float32 fraction (0.0123 for
    +1.23 %, whatever unit the store keeps it in); it is all NaN when ``has_change`` is false (the source
    has no ``$change`` for some code). ``bench_return[i]`` is the benchmark's close-to-close change on
    ``dates[i]`` (0 when unknown, as in Qlib).
    """

    dates: Dates
    signal_dates: Dates
    codes: tuple[str, ...]
    close: F64
    open: F64
    factor: F64
    volume: F64
    change: F64
    prev_close: F64
    has_change: bool
    bench_return: F64
    benchmark: str | None

    def __post_init__(self) -> None:
        shape = (len(self.dates), len(self.codes))
        for name in ("close", "open", "factor", "volume", "change"):
            got = getattr(self, name).shape
            if got != shape:
                raise InvalidInputError(f"MarketArrays.{name} has shape {got}, expected {shape}")
        if len(self.signal_dates) != len(self.dates) or len(self.bench_return) != len(self.dates):
            raise InvalidInputError("MarketArrays.signal_dates and bench_return must have one value per date")
        if len(self.dates) == 0:
            raise InvalidInputError("MarketArrays has no trading dates")

    def code_index(self) -> dict[str, int]:
        return {c: j for j, c in enumerate(self.codes)}


def load_market(
    source: FeatureSource,
    codes: str | Sequence[str],
    dates: DateRange,
    benchmark: str | None = "SH000300",
) -> MarketArrays:
    """Read ``$close, $open, $factor, $volume`` (and ``$change`` when every code with data serves it,
    see ``source.fields``) for ``codes``.

    ``codes`` is a list of codes or a universe name (every code that is a member at some time in
    ``dates``). ``benchmark`` is a code whose close-to-close change becomes ``bench_return``.
    """
    full = source.calendar().to_numpy().astype("datetime64[ms]")
    inside = dates.calendar_slice(full)
    lo, hi = inside.start, inside.stop
    if hi <= lo:
        raise InvalidInputError(f"no trading day of {source.source} in {dates}")
    ext_lo = max(lo - 1, 0)
    ext = full[ext_lo:hi]  # the previous trading day (when there is one), then the backtest days
    offset = lo - ext_lo
    day_list = ext[offset:]
    signal_dates = np.concatenate([np.array(["NaT"], dtype="datetime64[ms]"), full[: hi - 1]])[lo:hi]

    if isinstance(codes, str):
        names = source.members(codes, dates)["code"].unique().sort().to_list()
    else:
        names = sorted({str(StockCode.parse(c)) for c in codes})
    if not names:
        raise InvalidInputError(f"no codes to backtest in {codes!r}")
    # codes without data (always suspended) do not count: fields() names what every code with data serves
    has_change = "change" in source.fields(names)
    fields = [*FIELDS, "change"] if has_change else list(FIELDS)
    span = DateRange(ext[0].astype("datetime64[ms]").item(), ext[-1].astype("datetime64[ms]").item())
    frame = source.features(names, fields, span)
    if not has_change:
        log.info("no $change in %s for every code: price limits come from the board rules", source.source)

    n_days, n_codes = len(ext), len(names)
    index = {c: j for j, c in enumerate(names)}
    rows = np.searchsorted(ext, frame["datetime"].to_numpy().astype("datetime64[ms]"))
    cols = frame["code"].replace_strict(index, return_dtype=pl.Int64).to_numpy()
    in_span = _span_mask(source, names, index, ext, span)
    dense: dict[str, F64] = {}
    for f in fields:
        grid = np.full((n_days, n_codes), np.nan)
        grid[rows, cols] = frame[f].to_numpy().astype(np.float64)
        grid[~in_span] = np.nan
        dense[f] = grid
    change = dense["change"] if has_change else np.full((n_days, n_codes), np.nan)
    prev_close = dense["close"][0] if offset else np.full(n_codes, np.nan)
    bench = _bench_return(source, benchmark, ext, span)[offset:] if benchmark else np.zeros(len(day_list))
    return MarketArrays(
        dates=day_list,
        signal_dates=signal_dates,
        codes=tuple(names),
        close=dense["close"][offset:],
        open=dense["open"][offset:],
        factor=dense["factor"][offset:],
        volume=dense["volume"][offset:],
        change=change[offset:],
        prev_close=prev_close,
        has_change=has_change,
        bench_return=bench,
        benchmark=benchmark,
    )


def _span_mask(
    source: FeatureSource, names: list[str], index: dict[str, int], ext: Dates, span: DateRange
) -> npt.NDArray[np.bool_]:
    """True where a code is a member of the universe ``all`` (Qlib's exchange reads ``all.txt``)."""
    mask = np.zeros((len(ext), len(names)), dtype=bool)
    spans = source.members("all", span).filter(pl.col("code").is_in(names))
    starts = np.searchsorted(ext, spans["start"].to_numpy().astype("datetime64[ms]"), side="left")
    ends = np.searchsorted(ext, spans["end"].to_numpy().astype("datetime64[ms]"), side="right")
    for code, a, b in zip(spans["code"].to_list(), starts.tolist(), ends.tolist(), strict=True):
        mask[a:b, index[code]] = True
    return mask


def _bench_return(source: FeatureSource, benchmark: str, ext: Dates, span: DateRange) -> F64:
    """``$close / Ref($close, 1) - 1`` of the benchmark in float32 as Qlib computes it, NaN -> 0."""
    frame = source.features([benchmark], ["close"], span)
    if frame.is_empty():
        raise NotFoundError(f"benchmark {benchmark!r} has no data in {source.source}")
    when = frame["datetime"].to_numpy().astype("datetime64[ms]")
    close = frame["close"].to_numpy().astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (close[1:] / close[:-1] - np.float32(1.0)).astype(np.float64)
    pos = np.searchsorted(when[1:], ext)
    out = np.zeros(len(ext))
    found = (pos < len(change)) & (when[1:][np.minimum(pos, len(change) - 1)] == ext) if len(change) else None
    if found is not None:
        out[found] = change[pos[found]]
    return np.nan_to_num(out, nan=0.0)
