"""Column schemas of the frames that cross the library's boundaries.

Bars frame (one per query, sorted by ``code`` then ``datetime``):

========  ==================  =====================================================
column    dtype               meaning and unit
========  ==================  =====================================================
code      String              canonical stock code, e.g. ``SH600000``
datetime  Datetime(ms)        bar time; day bars at midnight, period bars at period end
open      Float64             price in yuan (adjusted as requested)
high      Float64             price in yuan
low       Float64             price in yuan
close     Float64             price in yuan
volume    Float64             shares (not lots); adjusted with the prices
amount    Float64             turnover in yuan; null where the store has none
factor    Float64             optional: the store's adjustment factor (Qlib stores)
========  ==================  =====================================================

Stocks frame: code, market, symbol, name, type (StockType value), valid, start_date, end_date
(end_date null while listed), lot (minimum trade number), tick (price step), has_data (the store holds
bars for the code: a Hikyuu table of the store's base kind, a Qlib ``features/<code>`` folder; a listed
code without data is "without bars", not a failure).

Membership frame (point-in-time universes): code, start, end (both inclusive, Datetime(ms)).

Weights frame (split and dividend events of one code, Hikyuu's stkWeight in natural units), sorted by date:
date (Datetime(ms), the ex-date), count_as_gift, count_for_sell, count_of_increasement (shares per 10
held), price_for_sell (yuan a share), bonus (yuan per 10 shares), suogu (split/consolidation ratio,
0 when none), total_count, free_count (10k shares).
"""

from __future__ import annotations

import polars as pl

DATETIME = pl.Datetime("ms")

BAR_COLUMNS: tuple[str, ...] = ("code", "datetime", "open", "high", "low", "close", "volume", "amount")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")

BAR_SCHEMA: dict[str, pl.DataType] = {
    "code": pl.String(),
    "datetime": DATETIME,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "amount": pl.Float64(),
}
FACTOR_COLUMN = "factor"

STOCK_SCHEMA: dict[str, pl.DataType] = {
    "code": pl.String(),
    "market": pl.String(),
    "symbol": pl.String(),
    "name": pl.String(),
    "type": pl.Int32(),
    "valid": pl.Boolean(),
    "start_date": pl.Date(),
    "end_date": pl.Date(),
    "lot": pl.Int64(),
    "tick": pl.Float64(),
    "has_data": pl.Boolean(),
}

MEMBERSHIP_SCHEMA: dict[str, pl.DataType] = {"code": pl.String(), "start": DATETIME, "end": DATETIME}


WEIGHT_SCHEMA: dict[str, pl.DataType] = {
    "date": DATETIME,
    "count_as_gift": pl.Float64(),
    "count_for_sell": pl.Float64(),
    "price_for_sell": pl.Float64(),
    "bonus": pl.Float64(),
    "count_of_increasement": pl.Float64(),
    "suogu": pl.Float64(),
    "total_count": pl.Float64(),
    "free_count": pl.Float64(),
}


def empty_bars(with_factor: bool = False) -> pl.DataFrame:
    """A bars frame with no rows and the full schema."""
    schema = dict(BAR_SCHEMA)
    if with_factor:
        schema[FACTOR_COLUMN] = pl.Float64()
    return pl.DataFrame(schema=schema)


def conform_bars(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast a frame to the bars schema (columns in order, factor kept when present)."""
    schema = dict(BAR_SCHEMA)
    if FACTOR_COLUMN in frame.columns:
        schema[FACTOR_COLUMN] = pl.Float64()
    exprs = [
        (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in schema.items()
    ]
    return frame.select(exprs)
