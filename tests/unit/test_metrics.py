"""Daily cross-sectional IC / Rank IC, ICIR and MSE, checked against pandas (as Qlib's calc_ic computes)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.modelling import metrics


def _frame(seed: int = 3, days: int = 12, codes: int = 40) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * codes
    score = rng.normal(size=n)
    label = 0.3 * score + rng.normal(size=n)
    label[rng.random(n) < 0.1] = np.nan  # missing labels are skipped pairwise
    score[:5] = 1.0  # ties, so average ranks matter
    score[5:10] = 1.0
    return pl.DataFrame(
        {
            "datetime": np.repeat(
                np.array(
                    [dt.datetime(2020, 1, 1) + dt.timedelta(days=d) for d in range(days)],
                    dtype="datetime64[ms]",
                ),
                codes,
            ),
            "code": [f"SH{600000 + i}" for i in range(codes)] * days,
            "score": score,
            "label": label,
        }
    )


def test_daily_ic_matches_pandas_pearson_and_spearman() -> None:
    frame = _frame()
    ours = metrics.daily_ic(frame)
    pdf = frame.to_pandas().set_index(["datetime", "code"])
    ic = pdf.groupby(level="datetime").apply(lambda d: d["score"].corr(d["label"]))
    ric = pdf.groupby(level="datetime").apply(lambda d: d["score"].corr(d["label"], method="spearman"))
    np.testing.assert_allclose(ours["ic"].to_numpy(), ic.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours["rank_ic"].to_numpy(), ric.to_numpy(), rtol=1e-10)
    summary = metrics.summarize(ours)
    assert summary["ic"] == pytest.approx(ic.mean())
    assert summary["icir"] == pytest.approx(ic.mean() / ic.std(ddof=1))
    assert summary["rank_ic"] == pytest.approx(ric.mean())
    assert summary["rank_icir"] == pytest.approx(ric.mean() / ric.std(ddof=1))


def test_constant_day_is_nan_and_left_out_of_the_mean() -> None:
    frame = _frame(days=3).with_columns(
        pl.when(pl.col("datetime") == pl.col("datetime").min())
        .then(0.5)
        .otherwise(pl.col("score"))
        .alias("score")
    )
    daily = metrics.daily_ic(frame)
    assert math.isnan(daily["ic"][0]) and math.isnan(daily["rank_ic"][0])
    assert metrics.summarize(daily)["ic"] == pytest.approx(float(daily["ic"][1:].mean()))  # type: ignore[arg-type]


def test_mse_over_rows_with_both_values() -> None:
    frame = pl.DataFrame(
        {
            "datetime": [dt.datetime(2020, 1, 1)] * 4,
            "code": list("abcd"),
            "score": [1.0, 2.0, 3.0, float("nan")],
            "label": [1.0, 0.0, None, 5.0],
        }
    )
    assert metrics.mse(frame) == pytest.approx((0.0 + 4.0) / 2)


def test_signal_metrics_finite_only_for_the_registry() -> None:
    frame = _frame(days=1, codes=1)  # one pair a day: no correlation
    found = metrics.finite_only({"test": metrics.signal_metrics(frame)})
    assert "ic" not in found["test"] and "days" in found["test"]


def test_perfect_signal_has_ic_one() -> None:
    frame = _frame().with_columns(pl.col("score").alias("label"))
    summary = metrics.summarize(metrics.daily_ic(frame))
    assert summary["ic"] == pytest.approx(1.0) and summary["rank_ic"] == pytest.approx(1.0)
