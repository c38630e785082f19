"""Daily information coefficients of predictions against the model's label.

The label is the one the models learn and are measured on (:mod:`hikyuu_qlib.factors.label`): Qlib's
``Ref($close, -2) / Ref($close, -1) - 1`` on *adjusted* closes, read two trading days past the last
day. The daily IC and Rank IC are computed by the model's own functions
(:func:`hikyuu_qlib.modelling.metrics.daily_ic`), so a model's predictions over its test segment give
its registered test IC and Rank IC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from hikyuu_qlib.domain import DateRange, InvalidInputError, StockCode
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.factors.alpha158 import LOOKAHEAD
from hikyuu_qlib.factors.label import LABEL, label_expr
from hikyuu_qlib.ports import FeatureSource

IC_SCHEMA: dict[str, pl.DataType] = {
    "datetime": DATETIME,
    "ic": pl.Float64(),
    "rank_ic": pl.Float64(),
    "count": pl.UInt32(),
}
LABEL_SCHEMA: dict[str, pl.DataType] = {"datetime": DATETIME, "code": pl.String(), "label": pl.Float64()}


def _normalise(frame: pl.DataFrame, value: str, what: str) -> pl.DataFrame:
    if "code" not in frame.columns and "instrument" in frame.columns:
        frame = frame.rename({"instrument": "code"})
    missing = [c for c in ("datetime", "code", value) if c not in frame.columns]
    if missing:
        have = ", ".join(frame.columns)
        raise InvalidInputError(f"{what} frame lacks column(s) {', '.join(missing)} (has: {have})")
    return frame.select(
        pl.col("datetime").cast(DATETIME),
        pl.col("code").cast(pl.String).str.to_uppercase(),
        pl.col(value).cast(pl.Float64).fill_nan(None).alias(value),
    )


def information_coefficient(
    predictions: pl.DataFrame, labels: pl.DataFrame, *, score: str = "score", label: str = "label"
) -> pl.DataFrame:
    """Per datetime: Pearson ``ic`` and Spearman ``rank_ic`` of ``score`` against ``label`` across codes,
    as the model's metrics compute them (NaN on a day with fewer than two pairs or constant values).

    Both frames have ``datetime`` and ``code`` (or ``instrument``). Returns ``IC_SCHEMA`` sorted by
    datetime; ``count`` is the day's scored and labelled codes.
    """
    from hikyuu_qlib.modelling.metrics import daily_ic

    preds = _normalise(predictions, score, "predictions")
    labs = _normalise(labels, label, "labels")
    joined = preds.join(labs, on=["datetime", "code"], how="inner")
    out = daily_ic(joined, score, label).rename({"n": "count"})
    return out.select([pl.col(k).cast(v) for k, v in IC_SCHEMA.items()])


def forward_returns(
    source: FeatureSource, codes: Sequence[str | StockCode], dates: DateRange
) -> pl.DataFrame:
    """The model's label per code on ``dates`` (``datetime, code, label``), from ``$close`` as the models
    read it from the same feature source (read ``LOOKAHEAD`` trading days past ``dates.end``)."""
    names = sorted({str(StockCode.parse(c)) for c in codes})
    if not names:
        return pl.DataFrame(schema=LABEL_SCHEMA)
    bars = source.features(names, ["close"], DateRange(dates.start, _lookahead_end(source, dates)))
    if bars.is_empty():
        return pl.DataFrame(schema=LABEL_SCHEMA)
    return (
        bars.select("datetime", "code", "close")
        .sort("code", "datetime")
        .with_columns(label_expr())
        .filter(pl.col("datetime").is_between(dates.start, dates.end))
        .select(
            pl.col("datetime").cast(DATETIME),
            "code",
            pl.col(LABEL).cast(pl.Float64).fill_nan(None).alias("label"),
        )
    )


def _lookahead_end(source: FeatureSource, dates: DateRange) -> dt.datetime:
    """The ``LOOKAHEAD``-th trading day after ``dates.end`` (the source's last when there are fewer)."""
    calendar = source.calendar()
    after = calendar.filter(calendar > dates.end)
    if after.is_empty():
        return dates.end
    end: dt.datetime = after[min(LOOKAHEAD, after.len()) - 1]
    return end
