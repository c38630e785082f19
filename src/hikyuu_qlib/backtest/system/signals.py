"""Signals evaluated columnar: a ``buy`` and a ``sell`` boolean column on a bars frame."""

from __future__ import annotations

import polars as pl

from hikyuu_qlib.backtest.system.config import ExprSignal, MACross, ScoreThreshold, Signal, TradeSignals
from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.domain.schema import DATETIME
from hikyuu_qlib.factors.indicators import ma


def _cross(fast: pl.Expr, slow: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Strict crosses within each code: below → above buys, above → below sells."""
    prev_fast = fast.shift(1).over("code")
    prev_slow = slow.shift(1).over("code")
    buy = (prev_fast < prev_slow) & (fast > slow)
    sell = (prev_fast > prev_slow) & (fast < slow)
    return buy, sell


def _scores(signal: ScoreThreshold) -> pl.DataFrame:
    preds = signal.predictions
    if "code" not in preds.columns:
        preds = preds.rename({"instrument": "code"})
    try:
        preds = preds.select(
            pl.col("code").cast(pl.String).str.to_uppercase(),
            pl.col("datetime").cast(DATETIME),
            pl.col(signal.column).cast(pl.Float64).alias("_score"),
        )
    except pl.exceptions.PolarsError as exc:
        raise InvalidInputError(f"predictions frame cannot be read as code/datetime/score: {exc}") from exc
    dupes = preds.select(pl.struct("code", "datetime").is_duplicated().any()).item()
    if dupes:
        raise InvalidInputError("predictions frame has more than one score for some (code, datetime)")
    return preds


def _flags(signal: TradeSignals) -> pl.DataFrame:
    try:
        frame = signal.signals.select(
            pl.col("code").cast(pl.String).str.to_uppercase(),
            pl.col("datetime").cast(DATETIME),
            pl.col("signal").cast(pl.String).str.to_uppercase().alias("_signal"),
        )
    except pl.exceptions.PolarsError as exc:
        raise InvalidInputError(f"signals frame cannot be read as code/datetime/signal: {exc}") from exc
    if frame.select(pl.struct("code", "datetime").is_duplicated().any()).item():
        raise InvalidInputError("signals frame has more than one signal for some (code, datetime)")
    return frame


def add_signals(bars: pl.DataFrame, signal: Signal) -> pl.DataFrame:
    """``bars`` (sorted by code, datetime) with boolean ``buy`` and ``sell`` columns (never null)."""
    if isinstance(signal, MACross):
        if signal.column not in bars.columns:
            raise InvalidInputError(f"MACross column {signal.column!r} is not a bars column")
        buy, sell = _cross(ma(signal.column, signal.fast), ma(signal.column, signal.slow))
        out = bars.with_columns(buy=buy, sell=sell)
    elif isinstance(signal, ScoreThreshold):
        joined = bars.join(_scores(signal), on=["code", "datetime"], how="left", maintain_order="left")
        out = joined.with_columns(
            buy=pl.col("_score") > signal.buy_above, sell=pl.col("_score") < signal.sell_below
        ).drop("_score")
    elif isinstance(signal, TradeSignals):
        joined = bars.join(_flags(signal), on=["code", "datetime"], how="left", maintain_order="left")
        out = joined.with_columns(buy=pl.col("_signal") == "BUY", sell=pl.col("_signal") == "SELL").drop(
            "_signal"
        )
    elif isinstance(signal, ExprSignal):
        try:
            out = bars.with_columns(buy=signal.buy.cast(pl.Boolean), sell=signal.sell.cast(pl.Boolean))
        except pl.exceptions.PolarsError as exc:
            raise InvalidInputError(f"signal expression fails on the bars frame: {exc}") from exc
    else:
        raise InvalidInputError(
            f"unknown signal {signal!r}: expected MACross, ScoreThreshold, TradeSignals or ExprSignal"
        )
    return out.with_columns(pl.col("buy").fill_null(False), pl.col("sell").fill_null(False))
