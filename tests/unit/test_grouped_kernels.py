"""Compiled grouped kernels agree with polars' per-group rolling windows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.factors.grouped import _view_changes, group_starts, grouped_rolling_mean
from hikyuu_qlib.stringviews import inline_views


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


def _reference_starts(values: list[str | None]) -> list[int]:
    starts = [i for i in range(len(values)) if i == 0 or values[i] != values[i - 1]]
    return [*starts, len(values)]


def test_group_starts_on_string_views_agree_with_a_plain_comparison() -> None:
    rng = np.random.default_rng(5)
    # inline strings (≤ 12 bytes) of every length, runs of random size, neighbours sharing prefixes
    alphabet = [
        "",
        "A",
        "SH",
        "SH6",
        "SH600000",
        "SH600001",
        "SZ000001",
        "BJ430047",
        "abcdefghijkl",
        "abcdefghijkm",
    ]
    values = [
        alphabet[i] for i in rng.integers(0, len(alphabet), 400) for _ in range(int(rng.integers(1, 4)))
    ]
    series = pl.Series("code", values)
    views = inline_views(series)
    assert views is not None and _view_changes(views) is not None  # the view path decides here
    assert group_starts(series).tolist() == _reference_starts(values)
    # a slice (non-zero offset into the views)
    assert group_starts(series.slice(7, 300)).tolist() == _reference_starts(values[7:307])
    # strings over 12 bytes live outside their views: equal strings still form one run
    long = ["SH600000-long-name"] * 3 + ["SH600000-long-namf"] * 2 + ["x"] + ["SH600000-long-name"] * 2
    rebuilt = pl.Series("code", ["".join(list(s)) for s in long])
    long_views = inline_views(rebuilt)
    assert long_views is not None and _view_changes(long_views) is None  # … so the general path decides
    assert group_starts(rebuilt).tolist() == _reference_starts(long)
    # several chunks and nulls take the general path
    chunked = pl.concat([pl.Series("code", values[:50]), pl.Series("code", values[50:])], rechunk=False)
    assert chunked.n_chunks() == 2
    assert group_starts(chunked).tolist() == _reference_starts(values)
    with_null: list[str | None] = ["a", "a", None, None, "b"]
    assert group_starts(pl.Series("code", with_null)).tolist() == [0, 2, 3, 4, 5]  # each null stands alone
