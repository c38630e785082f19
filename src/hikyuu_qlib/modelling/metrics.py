"""Signal metrics, as Qlib computes them (``qlib.contrib.eva.alpha.calc_ic`` and ``SigAnaRecord``).

Per day, over that day's stocks with both a score and a label: IC is Pearson's correlation, Rank IC is
Spearman's (Pearson's over average ranks). ICIR = mean / std (ddof 1) over the days with a value.
MSE is over every row with both values, under the name of the label it is measured against:
``mse_raw_label`` against the raw label (the return itself), ``mse_learn_label`` against the learning
label (after the learn processors, e.g. CSZScoreNorm: what the model was fit to). Their definitions
are in :data:`hikyuu_qlib.backtest.measures.MEASURES`.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

SCORE = "score"
LABEL = "label"


def _finite(column: str) -> pl.Expr:
    return pl.col(column).is_not_null() & pl.col(column).is_finite()


def daily_ic(
    frame: pl.DataFrame, score: str = SCORE, label: str = LABEL, by: str = "datetime"
) -> pl.DataFrame:
    """``datetime, ic, rank_ic, n`` for each day (NaN where a day's values are constant or < 2 pairs)."""
    pairs = frame.select(
        pl.col(by), pl.col(score).cast(pl.Float64).alias("s"), pl.col(label).cast(pl.Float64).alias("l")
    ).filter(_finite("s") & _finite("l"))
    ranked = pairs.with_columns(
        pl.col("s").rank("average").over(by).alias("rs"), pl.col("l").rank("average").over(by).alias("rl")
    )
    return (
        ranked.group_by(by)
        .agg(
            pl.corr("s", "l").alias("ic"),
            pl.corr("rs", "rl").alias("rank_ic"),
            pl.len().alias("n"),
        )
        .with_columns(
            pl.when(pl.col("n") >= 2).then(pl.col(c)).otherwise(float("nan")).fill_null(float("nan")).alias(c)
            for c in ("ic", "rank_ic")
        )
        .sort(by)
    )


def _mean_ir(values: pl.Series) -> tuple[float, float]:
    clean = values.fill_nan(None).drop_nulls()
    if clean.len() == 0:
        return float("nan"), float("nan")
    mean = float(clean.mean())  # type: ignore[arg-type]
    std = clean.std(ddof=1)
    ir = mean / float(std) if std is not None and clean.len() > 1 and float(std) > 0 else float("nan")  # type: ignore[arg-type]
    return mean, ir


def summarize(daily: pl.DataFrame) -> dict[str, Any]:
    """IC, ICIR, Rank IC, Rank ICIR over the days of :func:`daily_ic`."""
    ic, icir = _mean_ir(daily.get_column("ic"))
    ric, ricir = _mean_ir(daily.get_column("rank_ic"))
    return {"ic": ic, "icir": icir, "rank_ic": ric, "rank_icir": ricir, "days": daily.height}


def mse(frame: pl.DataFrame, score: str = SCORE, label: str = LABEL) -> float:
    """Mean squared error over rows where both are finite."""
    pairs = frame.filter(_finite(score) & _finite(label))
    if pairs.height == 0:
        return float("nan")
    return float(
        pairs.select(((pl.col(score).cast(pl.Float64) - pl.col(label).cast(pl.Float64)) ** 2).mean()).item()
    )


def signal_metrics(
    frame: pl.DataFrame, score: str = SCORE, label: str = LABEL, learn_label: str | None = None
) -> dict[str, Any]:
    """IC, ICIR, Rank IC, Rank ICIR against ``label`` (the raw label), ``mse_raw_label`` and, when the
    frame carries the learning label in ``learn_label``, ``mse_learn_label``; ``rows``."""
    out: dict[str, Any] = dict(summarize(daily_ic(frame, score, label)))
    out["mse_raw_label"] = mse(frame, score, label)
    if learn_label is not None:
        out["mse_learn_label"] = mse(frame, score, learn_label)
    out["rows"] = frame.height
    return out


def finite_only(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics with NaN/inf dropped (the registry stores finite numbers only)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out[key] = finite_only(value)
        elif isinstance(value, float) and not math.isfinite(value):
            continue
        else:
            out[key] = value
    return out
