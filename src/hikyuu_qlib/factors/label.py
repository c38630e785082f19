"""The Alpha158 label: the return from the next day's close to the close after it."""

from __future__ import annotations

import polars as pl

LABEL = "LABEL0"


def label_expr() -> pl.Expr:
    """Qlib's ``Ref($close, -2)/Ref($close, -1) - 1`` per code, in float32 like ``D.features``.

    Use on a frame sorted by (code, datetime) whose rows run past the last date by two rows where the
    data exists; the last two rows of each code are NaN.
    """
    close = pl.col("close").cast(pl.Float32).fill_null(float("nan"))
    ahead2 = close.shift(-2).over("code")
    ahead1 = close.shift(-1).over("code")
    return (ahead2 / ahead1 - 1).fill_null(float("nan")).cast(pl.Float32).alias(LABEL)


def add_label(bars: pl.DataFrame) -> pl.DataFrame:
    """``bars`` with the ``LABEL0`` column appended."""
    return bars.with_columns(label_expr())
