"""Whole-market building blocks: per-row adjustment on numpy columns and the repeated code column agree
exactly with the frame-level versions they stand in for."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib import stringviews
from hikyuu_qlib.stores.hikyuu.adjust import affine_arrays, apply_affine
from hikyuu_qlib.stringviews import inline_views, repeat_strings


def test_affine_arrays_equal_apply_affine_bit_for_bit_in_place_too() -> None:
    rng = np.random.default_rng(11)
    n = 5000
    cols = {c: rng.uniform(1, 50, n) for c in ("open", "high", "low", "close")}
    cols["close"][rng.random(n) < 0.05] = 0.0  # amount unchanged where the close is zero
    cols["close"][7] = np.nan
    cols["volume"], cols["amount"] = rng.uniform(0, 1e6, n), rng.uniform(0, 1e8, n)
    a, b = rng.uniform(0.3, 1.0, n), rng.uniform(-1, 0, n)
    expected = apply_affine(pl.DataFrame(cols), a, b)
    order = ("open", "high", "low", "close", "volume", "amount")
    inputs = [cols[c] for c in order]
    fresh = [np.empty(n) for _ in order]
    affine_arrays(a, b, *inputs, *fresh)
    assert pl.DataFrame(dict(zip(order, fresh, strict=True))).equals(expected.select(order))
    affine_arrays(a, b, *inputs, *inputs)  # in place
    assert pl.DataFrame(dict(zip(order, inputs, strict=True))).equals(expected.select(order))


@pytest.mark.parametrize("as_views", [True, False])
def test_repeat_strings_builds_the_same_column_as_a_gather(as_views: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stringviews, "_views_pay_off", lambda rows: as_views)
    counts = np.array([3, 0, 1, 5, 2], dtype=np.int64)
    for values in (["SH600000", "SZ000001", "", "BJ430047", "abcdefghijkl"],  # inline
                   ["SH600000", "a-name-longer-than-12", "x", "y", "z"]):  # not inline: always gathered
        column = repeat_strings("code", values, counts)
        assert column.name == "code" and column.dtype == pl.String
        assert column.to_list() == [v for v, k in zip(values, counts, strict=True) for _ in range(k)]
    views = inline_views(repeat_strings("code", ["SH600000"], np.array([4])))
    assert views is not None and views.shape == (4, 2)
    assert repeat_strings("code", [], np.array([], dtype=np.int64)).len() == 0
