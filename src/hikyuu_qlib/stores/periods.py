"""Week, month, quarter, half-year and year bars built from day bars, by Hikyuu's rules.

Hikyuu keeps these periods as index tables over its day bars (see :mod:`.hikyuu.periods`): a period is
labelled with its calendar end (a week with its Friday, a month with its last day, a quarter, half-year or
year with the last day of its last month), whether or not that day traded, and its bar is the first open,
the highest high, the lowest low, the last close and the summed volume and amount of its days. A week
runs from Monday to Sunday. Adjusted period bars aggregate adjusted day bars, as Hikyuu does.

Stores without such tables (a Qlib provider directory) build the same bars here from their day bars;
a period is kept when its label falls within the requested dates, with all of its days, as Hikyuu keeps
an index row. A Qlib store pads a suspension with rows of volume 0 at the previous close, where Hikyuu has
no row at all: with ``traded_only`` those rows take no part (a period without a traded day has no bar),
so both stores give the same periods.
"""

from __future__ import annotations

import polars as pl

from hikyuu_qlib.domain import DateRange, KType
from hikyuu_qlib.domain.errors import UnsupportedKTypeError
from hikyuu_qlib.domain.schema import DATETIME, conform_bars

#: The last month of the period holding each month, per ktype.
_SPAN_MONTHS: dict[KType, int] = {KType.MONTH: 1, KType.QUARTER: 3, KType.HALFYEAR: 6, KType.YEAR: 12}


def period_label(ktype: KType, column: str = "datetime") -> pl.Expr:
    """The period-end label (midnight) of each day in ``column`` for a period of day bars."""
    day = pl.col(column).cast(DATETIME).dt.truncate("1d")
    if ktype is KType.WEEK:
        # every day of a Monday-to-Sunday week maps onto its Friday
        return day.dt.truncate("1w").dt.offset_by("4d").cast(DATETIME)
    span = _SPAN_MONTHS.get(ktype)
    if span is None:
        raise UnsupportedKTypeError(f"ktype {ktype.value!r} is not a period of day bars")
    last_month = ((pl.col(column).dt.month().cast(pl.Int32) - 1) // span + 1) * span
    first_of_last = pl.date(pl.col(column).dt.year(), last_month, 1)
    return first_of_last.dt.month_end().cast(DATETIME)


def period_calendar(days: pl.Series, ktype: KType) -> pl.Series:
    """The labels of the periods that hold the trading ``days``, ascending (``Datetime(ms)``)."""
    frame = days.cast(DATETIME).alias("datetime").to_frame()
    return frame.select(period_label(ktype).unique(maintain_order=True).alias("datetime")).to_series()


def aggregate_periods(
    day_bars: pl.DataFrame, ktype: KType, dates: DateRange | None = None, *, traded_only: bool = False
) -> pl.DataFrame:
    """Period bars of ``day_bars`` (``BAR_SCHEMA``, sorted by code then datetime), one row per code and
    period, labelled with the period end; only the periods whose label lies within ``dates``; with
    ``traded_only``, from the days whose volume is not 0.

    ``amount`` is null for a period with a day whose amount is unknown (a store without amounts).
    A ``factor`` column, when present, gives each period its last day's factor.
    """
    amount = pl.col("amount")
    aggs = [
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        pl.col("volume").sum(),
        pl.when(amount.null_count() == 0).then(amount.sum()).otherwise(None).alias("amount"),
    ]
    if "factor" in day_bars.columns:
        aggs.append(pl.col("factor").last())
    if traded_only:
        day_bars = day_bars.filter(pl.col("volume") != 0)
    bars = (
        day_bars.with_columns(period_label(ktype).alias("_period"))
        .group_by("code", "_period", maintain_order=True)
        .agg(aggs)
        .rename({"_period": "datetime"})
    )
    if dates is not None:
        bars = bars.filter(pl.col("datetime").is_between(dates.start, dates.end))
    return conform_bars(bars)
