"""Daily information coefficients of predictions against realised forward returns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from hikyuu_qlib.domain import DateRange, InvalidInputError, KType, StockCode
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.factors.label import LABEL, label_expr
from hikyuu_qlib.ports import MarketData

IC_SCHEMA: dict[str, pl.DataType] = {"datetime": DATETIME, "ic": pl.Float64(), "rank_ic": pl.Float64(),
                                     "count": pl.UInt32()}


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
    predictions: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    score: str = "score",
    label: str = "label",
    min_count: int = 3,
) -> pl.DataFrame:
    """Per datetime: Pearson ``ic`` and Spearman ``rank_ic`` of ``score`` against ``label`` across codes.

    Both frames have ``datetime`` and ``code`` (or ``instrument``); days with fewer than ``min_count``
    scored and labelled codes are dropped. Returns ``IC_SCHEMA`` sorted by datetime.
    """
    preds = _normalise(predictions, score, "predictions")
    labs = _normalise(labels, label, "labels")
    joined = preds.join(labs, on=["datetime", "code"], how="inner").drop_nulls([score, label])
    out = (
        joined.group_by("datetime")
        .agg(
            pl.corr(score, label).alias("ic"),
            pl.corr(score, label, method="spearman").alias("rank_ic"),
            pl.len().alias("count"),
        )
        .filter(pl.col("count") >= min_count)
        .sort("datetime")
    )
    return out.select([pl.col(k).cast(v) for k, v in IC_SCHEMA.items()])


def forward_returns(store: MarketData, codes: Sequence[str | StockCode], dates: DateRange) -> pl.DataFrame:
    """Qlib's label ``close[t+2] / close[t+1] - 1`` per code on ``dates`` (``datetime, code, label``).

    Bars are read a few weeks past ``dates.end`` so that the last days get their label when data exists.
    """
    ext = DateRange(dates.start, dates.end + dt.timedelta(days=31))
    frames = [store.read_bars(StockCode.parse(c), ktype=KType.DAY, dates=ext) for c in codes]
    if not frames:
        return pl.DataFrame(schema={"datetime": DATETIME, "code": pl.String(), "label": pl.Float64()})
    bars = pl.concat(frames, how="vertical_relaxed").sort("code", "datetime")
    return (
        bars.with_columns(label_expr())
        .filter(pl.col("datetime").is_between(dates.start, dates.end))
        .select("datetime", "code", pl.col(LABEL).cast(pl.Float64).fill_nan(None).alias("label"))
    )
