"""Period bars (week … year) aggregated from day bars, labelled at the period's end as Hikyuu labels them.

Labels: week -> the Friday of the week; month -> the last calendar day of the month; quarter -> the last
day of March, June, September or December; halfyear -> 30 June or 31 December; year -> 31 December.
A period's open is its first day's open, close its last day's close, high/low the extremes, volume and
amount the sums.
"""

from __future__ import annotations

import polars as pl

from hikyuu_qlib.domain import KType, UnsupportedKTypeError
from hikyuu_qlib.domain.schema import DATETIME

_EVERY: dict[KType, str] = {KType.MONTH: "1mo", KType.QUARTER: "3mo", KType.HALFYEAR: "6mo", KType.YEAR: "1y"}


def period_label(column: pl.Expr, ktype: KType) -> pl.Expr:
    """The period-end label of each datetime in ``column`` (midnight)."""
    day = column.dt.truncate("1d")
    if ktype is KType.DAY:
        return day.cast(DATETIME)
    if ktype is KType.WEEK:
        return (day.dt.truncate("1w") + pl.duration(days=4)).cast(DATETIME)
    every = _EVERY.get(ktype)
    if every is None:
        raise UnsupportedKTypeError(f"ktype {ktype.value!r} is not a period of day bars")
    return (day.dt.truncate(every).dt.offset_by(every) - pl.duration(days=1)).cast(DATETIME)


def aggregate(day_bars: pl.DataFrame, ktype: KType) -> pl.DataFrame:
    """Aggregate day bars (``BAR_SCHEMA``, sorted by code and datetime) to ``ktype`` bars, same schema."""
    if ktype is KType.DAY:
        return day_bars
    label = period_label(pl.col("datetime"), ktype)
    return (
        day_bars.with_columns(label.alias("__label"))
        .group_by("code", "__label", maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.col("amount").sum(),
        )
        .rename({"__label": "datetime"})
        .select(day_bars.columns)
    )
