"""Export any MarketData store to a Qlib provider directory.

Layout written (see :mod:`hikyuu_qlib.stores.qlib.writer`): ``calendars/day.txt`` from the store's day
calendar; ``instruments/all.txt`` plus one file per market (``sh.txt``, ``sz.txt``, ``bj.txt``) with each
exported code's first and last bar date; and per code the bins ``open, high, low, close, volume, factor,
change`` (plus ``amount`` and ``vwap`` when the store has turnover).

Qlib's conventions, with ``factor = adjusted close / original close`` on each day:

* ``$close`` is the store's adjusted close for ``adjust`` (with ``Adjust.FORWARD`` it equals the store's
  forward-adjusted close; ``$factor`` = adjusted / traded close); ``$open, $high, $low`` are the traded
  prices × ``$factor``, so that ``$price / $factor`` is the traded price for every price, as Qlib
  assumes. For stores whose adjustment is proportional (Qlib, synthetic) these equal the store's
  adjusted open/high/low; Hikyuu's forward
  adjustment also subtracts cash dividends, so there they differ slightly from Hikyuu's own adjusted
  open/high/low (their order is kept, as one factor scales the whole bar). With ``Adjust.NONE`` prices
  are the traded ones and ``$factor`` is 1;
* ``$volume = original shares / $factor``, so price × volume is the day's turnover in every mode;
* Qlib's factor must be positive. Hikyuu's forward adjustment is affine (it subtracts cash dividends)
  and can push old adjusted prices to or below zero; for such a code the factor is rebased on the
  store's backward adjustment instead (``factor = backward close / traded close``, scaled so the last
  bar's factor is 1: still the original price on the last bar, multiplicative throughout). Those codes
  are listed in ``ExportReport.rebased``; any other non-positive factor fails the code;
* ``$amount`` is the turnover in yuan, ``$vwap = $amount / $volume`` (an adjusted price);
* ``$change`` is the close-to-close return on ``$close`` against the code's previous bar in the store
  (even one dropped for being off the calendar), so splits and dividends do not show as crashes; NaN on
  a code's first bar;
* calendar days between a code's first and last bar without a bar (suspensions) are NaN.

Whether ``amount``/``vwap`` are written is decided by the first code that has bars (turnover present and
not all null); later codes then write them too, NaN where they lack turnover, so every instrument has the
same fields. Bars on days that are not in the store's calendar cannot be placed: they are dropped and
counted in ``off_calendar_rows`` (real stores have such days, e.g. early-1990s Shenzhen sessions missing
from the SH000001 index that Hikyuu's calendar follows); ``extend_calendar=True`` first reads every code's
raw bars and adds their dates to the calendar instead, at the cost of a second read per code.
A code that fails to read is recorded in the report (``failed``); the others are exported. A code the
store lists but holds no bars for (its ``has_data`` is false, or reading it raises :class:`NoBarsError`)
is not a failure: it is counted in ``without_bars``. The report has the shape of every batch report
(:class:`~hikyuu_qlib.stores.reports.BatchReport`): ``ok`` (the codes exported or empty), ``failed``.

Files are replaced one by one (atomically each); an existing directory is written over, and feature
folders of codes that are not exported this time are left in place (they are not in ``all.txt``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from hikyuu_qlib.domain import Adjust, DataFormatError, HQError, KType, NoBarsError, StockCode
from hikyuu_qlib.observability.loads import batch_load
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.ports import MarketData, Progress
from hikyuu_qlib.stores.qlib.writer import QlibWriter
from hikyuu_qlib.stores.reports import BatchReport

log = logging.getLogger(__name__)

BASE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "factor", "change")
TURNOVER_FIELDS: tuple[str, ...] = ("amount", "vwap")


@dataclass(slots=True)
class ExportReport(BatchReport):
    """What :func:`export_qlib` wrote: ``ok``, the codes done (in order), of which ``empty`` had bars but
    none on the calendar and the others are ``exported``; ``without_bars`` (listed by the store, no
    data); ``failed`` (code -> ``"ErrorType: message"``); ``rebased`` factors; row counts."""

    out: Path
    adjust: Adjust
    calendar_days: int = 0
    fields: tuple[str, ...] = BASE_FIELDS
    empty: list[str] = field(default_factory=list)
    rebased: list[str] = field(default_factory=list)
    without_bars: list[str] = field(default_factory=list)
    rows: int = 0
    off_calendar_rows: int = 0
    seconds: float = 0.0

    @property
    def exported(self) -> list[str]:
        """The codes written: those done that had a bar on the calendar."""
        empty = set(self.empty)
        return [c for c in self.ok if c not in empty]

    def to_dict(self) -> dict[str, Any]:
        return {**BatchReport.to_dict(self), "exported": self.exported}


def export_qlib(
    store: MarketData,
    out: Path,
    adjust: Adjust = Adjust.FORWARD,
    codes: Sequence[StockCode] | None = None,
    progress: Progress | None = None,
    *,
    extend_calendar: bool = False,
    telemetry: Telemetry | None = None,
) -> ExportReport:
    """Write a Qlib provider directory at ``out`` from ``store``'s day bars; see the module docstring."""
    started = time.perf_counter()
    out = Path(out).expanduser()
    report = ExportReport(out=out, adjust=adjust)
    if codes is None:
        listed = store.stocks(valid=None)
        todo = [StockCode.parse(c) for c in listed.filter(pl.col("has_data"))["code"].to_list()]
        report.without_bars = listed.filter(~pl.col("has_data"))["code"].to_list()
    else:
        todo = [StockCode.parse(c) for c in codes]
    calendar = store.calendar(ktype=KType.DAY)
    if extend_calendar:
        calendar = _bar_dates(store, todo, calendar)
    writer = QlibWriter(out)
    writer.write_calendar(calendar)
    report.calendar_days = len(calendar)
    days = calendar.alias("datetime").to_frame()
    with_turnover: bool | None = None
    spans: list[pl.DataFrame] = []
    with batch_load(telemetry, store.source, KType.DAY.value, len(todo)) as tally:
        for done, code in enumerate(todo, start=1):
            read_at = time.perf_counter()
            try:
                frame, rebased = _qlib_fields(store, code, adjust)
            except NoBarsError:
                report.without_bars.append(str(code))
                tally.read(time.perf_counter() - read_at, 0)
            except (HQError, OSError) as exc:
                report.fail(str(code), exc)
                log.warning("export: %s failed: %s", code, exc)
                tally.failed(str(code), time.perf_counter() - read_at, exc)
            else:
                tally.read(time.perf_counter() - read_at, frame.height)
                on_calendar = frame.join(days, on="datetime", how="semi")
                report.off_calendar_rows += frame.height - on_calendar.height
                report.ok.append(str(code))
                if on_calendar.height == 0:
                    report.empty.append(str(code))
                else:
                    if with_turnover is None:
                        with_turnover = bool(on_calendar["amount"].is_not_null().any())
                    keep = BASE_FIELDS + (TURNOVER_FIELDS if with_turnover else ())
                    report.rows += writer.write_features(code, on_calendar.select("datetime", *keep))
                    if rebased:
                        report.rebased.append(str(code))
                    spans.append(
                        pl.DataFrame(
                            {
                                "code": [str(code)],
                                "start": [on_calendar["datetime"].min()],
                                "end": [on_calendar["datetime"].max()],
                            }
                        )
                    )
            if progress is not None:
                progress(done, len(todo), str(code))
    report.fields = BASE_FIELDS + (TURNOVER_FIELDS if with_turnover else ())
    report.without_bars.sort()
    _write_universes(writer, spans)
    report.seconds = time.perf_counter() - started
    log.info(
        "exported %d code(s) to %s (%d failed, %d without bars, %d with no bar on the calendar) in %.1fs",
        len(report.exported),
        out,
        len(report.failed),
        len(report.without_bars),
        len(report.empty),
        report.seconds,
        extra={"rows": report.rows, "off_calendar_rows": report.off_calendar_rows},
    )
    return report


def _bar_dates(store: MarketData, codes: Sequence[StockCode], calendar: pl.Series) -> pl.Series:
    """The calendar plus every date on which one of ``codes`` has a bar (codes that fail are skipped)."""
    parts = [calendar.alias("datetime")]
    for code in codes:
        try:
            parts.append(store.read_bars(code, adjust=Adjust.NONE)["datetime"])
        except (HQError, OSError):
            continue
    return pl.concat(parts).unique().sort()


def _adjusted_close(store: MarketData, code: StockCode, adjust: Adjust, days: pl.DataFrame) -> pl.Series:
    adjusted = store.read_bars(code, adjust=adjust).select("datetime", pl.col("close").alias("adj"))
    return days.join(adjusted, on="datetime", how="left")["adj"]


def _factor(store: MarketData, code: StockCode, adjust: Adjust, raw: pl.DataFrame) -> tuple[pl.Series, bool]:
    """Per-bar ``$factor`` (null where the traded close is unusable) and whether it was rebased."""
    raw_close = raw["raw_close"].cast(pl.Float64)
    if adjust is Adjust.NONE:
        return pl.Series("factor", [1.0] * raw.height, dtype=pl.Float64), False
    days = raw.select("datetime")
    priced = (raw_close > 0).fill_null(False)
    nothing = pl.Series("factor", [None] * raw.height, dtype=pl.Float64)
    factor = (_adjusted_close(store, code, adjust, days) / raw_close).alias("factor")
    if not (priced & ~(factor > 0).fill_null(False)).any():
        return factor.zip_with(priced, nothing), False
    if adjust is Adjust.FORWARD:
        back = (_adjusted_close(store, code, Adjust.BACKWARD, days) / raw_close).alias("factor")
        good = (back > 0).fill_null(False)
        if not (priced & ~good).any() and (priced & good).any():
            last = back.filter(priced & good)[-1]
            return (back / last).zip_with(priced, nothing), True
    raise DataFormatError(
        f"{code}: the store's {adjust.value} adjustment gives non-positive prices, "
        "which Qlib's multiplicative $factor cannot express"
    )


def _qlib_fields(store: MarketData, code: StockCode, adjust: Adjust) -> tuple[pl.DataFrame, bool]:
    """One code's bars as Qlib fields (Float64 here; the writer stores float32), and the rebased flag."""
    raw = (
        store.read_bars(code, adjust=Adjust.NONE)
        .select(
            "datetime",
            *[pl.col(c).alias(f"raw_{c}") for c in ("open", "high", "low", "close", "volume")],
            pl.col("amount").cast(pl.Float64),
        )
        .sort("datetime")
    )
    factor, rebased = _factor(store, code, adjust, raw)
    close = pl.col("raw_close") * pl.col("factor")
    frame = (
        raw.with_columns(factor)
        .with_columns(
            (pl.col("raw_open") * pl.col("factor")).alias("open"),
            (pl.col("raw_high") * pl.col("factor")).alias("high"),
            (pl.col("raw_low") * pl.col("factor")).alias("low"),
            close.alias("close"),
            (pl.col("raw_volume") / pl.col("factor")).alias("volume"),
            (close / close.shift(1) - 1.0).alias("change"),
        )
        .with_columns(pl.when(pl.col("volume") > 0).then(pl.col("amount") / pl.col("volume")).alias("vwap"))
        .select("datetime", *BASE_FIELDS, *TURNOVER_FIELDS)
    )
    return frame, rebased


def _write_universes(writer: QlibWriter, spans: list[pl.DataFrame]) -> None:
    frame = (
        pl.concat(spans)
        if spans
        else pl.DataFrame(schema={"code": pl.String, "start": pl.Datetime("ms"), "end": pl.Datetime("ms")})
    )
    writer.write_instruments("all", frame)
    for market in ("SH", "SZ", "BJ"):
        part = frame.filter(pl.col("code").str.starts_with(market))
        if part.height:
            writer.write_instruments(market.lower(), part)


__all__ = ["ExportReport", "export_qlib"]
