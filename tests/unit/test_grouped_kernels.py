"""Compiled grouped kernels agree with polars' per-group rolling windows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.factors.grouped import group_starts, grouped_rolling_mean


def _frame() -> pl.DataFrame:
    rng = np.random.default_rng(3)
    sizes = [25, 3, 0, 60, 19, 20]
    codes = np.repeat([f"SH6000{i:02d}" for i in range(len(sizes))], sizes)
    close = rng.normal(10, 1, codes.size)
    close[30] = np.nan  # a gap inside the fourth code
    return pl.DataFrame({"code": codes, "close": close})


def test_group_starts_mark_each_run() -> None:
    frame = _frame()
    starts = group_starts(frame["code"])
    assert starts.tolist() == [0, 25, 28, 88, 107, 127]


@pytest.mark.parametrize("n", [1, 5, 20])
def test_rolling_mean_matches_polars_over_code(n: int) -> None:
    frame = _frame()
    ours = grouped_rolling_mean(frame, "close", n).to_numpy()
    expected = (
        frame.with_columns(pl.col("close").fill_nan(None))
        .select(pl.col("close").rolling_mean(n).over("code"))["close"]
        .fill_null(np.nan)
        .to_numpy()
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-12, equal_nan=True)
    # windows never cross codes: the first n-1 bars of every code are NaN
    for start in group_starts(frame["code"])[:-1]:
        assert np.isnan(ours[start : start + n - 1]).all()


def test_rolling_mean_rejects_bad_window() -> None:
    with pytest.raises(InvalidInputError, match="window"):
        grouped_rolling_mean(_frame(), "close", 0)
