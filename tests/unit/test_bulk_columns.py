"""Whole-market building blocks: per-row adjustment on numpy columns and the repeated code column agree
exactly with the frame-level versions they stand in for."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib import Adjust, stringviews
from hikyuu_qlib.stores.hikyuu.adjust import WeightEvents, apply_affine, grouped_adjust, grouped_coefficients
from hikyuu_qlib.stringviews import inline_views, repeat_strings


@pytest.mark.parametrize("adjust", [Adjust.FORWARD, Adjust.BACKWARD])
def test_grouped_adjust_equals_apply_affine_bit_for_bit_in_place_too(adjust: Adjust) -> None:
    rng = np.random.default_rng(11)
    lengths = np.array([400, 0, 1, 2500, 1200, 900], dtype=np.int64)
    n = int(lengths.sum())
    row_hi = np.cumsum(lengths)
    row_lo = row_hi - lengths
    day = 86_400_000
    bar_ms = np.concatenate(
        [np.sort(rng.choice(np.arange(10_000, 16_000), k, replace=False)) * day for k in lengths.tolist()]
    ).astype(np.int64)
    # per code: events sorted by date, some outside the code's window, the last code without any
    counts = [3, 2, 0, 7, 1, 0]
    dates = np.concatenate([np.sort(rng.integers(9_000, 17_000, k)) * day for k in counts]).astype(np.int64)
    events = WeightEvents(dates, rng.uniform(1.0, 2.0, dates.size), rng.uniform(-1.0, 0.5, dates.size))
    ev_hi = np.cumsum(counts).astype(np.int64)
    ev_lo = ev_hi - np.asarray(counts, dtype=np.int64)
    cols = {c: rng.uniform(1, 50, n) for c in ("open", "high", "low", "close")}
    cols["close"][rng.random(n) < 0.05] = 0.0  # amount unchanged where the close is zero
    cols["close"][7] = np.nan
    cols["volume"], cols["amount"] = rng.uniform(0, 1e6, n), rng.uniform(0, 1e8, n)
    a, b = grouped_coefficients(bar_ms, row_lo, row_hi, events, ev_lo, ev_hi, adjust)
    assert not np.all(a == 1.0)  # the events do move prices
    expected = apply_affine(pl.DataFrame(cols), a, b)
    order = ("open", "high", "low", "close", "volume", "amount")
    inputs = [cols[c] for c in order]
    fresh = [np.empty(n) for _ in order]
    grouped_adjust(bar_ms, row_lo, row_hi, events, ev_lo, ev_hi, adjust, inputs, fresh)
    assert pl.DataFrame(dict(zip(order, fresh, strict=True))).equals(expected.select(order))
    grouped_adjust(bar_ms, row_lo, row_hi, events, ev_lo, ev_hi, adjust, inputs, inputs)  # in place
    assert pl.DataFrame(dict(zip(order, inputs, strict=True))).equals(expected.select(order))


@pytest.mark.parametrize("path", ["views", "views-kernel", "gather"])
def test_repeat_strings_builds_the_same_column_as_a_gather(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stringviews, "_views_pay_off", lambda rows: path != "gather")
    if path == "views-kernel":  # long columns are filled by a compiled loop
        monkeypatch.setattr(stringviews, "VIEWS_MIN_ROWS", 1)
    counts = np.array([3, 0, 1, 5, 2], dtype=np.int64)
    for values in (
        ["SH600000", "SZ000001", "", "BJ430047", "abcdefghijkl"],  # inline
        ["SH600000", "a-name-longer-than-12", "x", "y", "z"],
    ):  # not inline: always gathered
        column = repeat_strings("code", values, counts)
        assert column.name == "code" and column.dtype == pl.String
        assert column.to_list() == [v for v, k in zip(values, counts, strict=True) for _ in range(k)]
    views = inline_views(repeat_strings("code", ["SH600000"], np.array([4])))
    assert views is not None and views.shape == (4, 2)
    assert repeat_strings("code", [], np.array([], dtype=np.int64)).len() == 0
