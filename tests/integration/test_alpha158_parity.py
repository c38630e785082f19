"""Alpha158 and its label against pyqlib's own Alpha158 handler on the real Qlib store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.conftest import pyqlib_reference
from tests.pyqlib_references import ALPHA158

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.factors.alpha158 import alpha158_names
from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.universe import Universe

pytestmark = pytest.mark.qlib

START, END, FIT_END = ALPHA158.start, ALPHA158.end, ALPHA158.fit_end
N_CODES = ALPHA158.n_codes

#: Cells where pyqlib's value is not the definition's value but a rounding residual of pandas' running
#: variance: every value in these windows is 0 (a suspension: close unchanged, volume 0), so the Std is 0
#: by definition, but pandas' Welford update keeps a residual of the large values that left the window
#: (its cancellation check does not recompute these windows), and Qlib divides it by $close, by
#: $volume + 1e-12 (VSTD, up to 5e11) or by Mean + 1e-12 (WVMA). The residual depends on where pandas'
#: running state began: ours begins where Qlib's query of the expression begins (the start date less
#: the window), so it is the same residual. One cell per (feature, code) with such windows.
RESIDUALS: dict[tuple[str, str], str] = {
    ("STD5", "SH600959"): "2017-06-22",
    ("STD20", "SZ002756"): "2017-07-26",
    ("VSTD30", "SH600959"): "2017-07-28",
    ("VSTD60", "SZ002756"): "2017-09-21",
    ("WVMA5", "SH601106"): "2019-01-18",
    ("WVMA5", "SZ000932"): "2017-06-21",
    ("WVMA10", "SH600959"): "2017-06-30",
    ("WVMA30", "SH600959"): "2017-07-28",
}


def _codes(qlib_dir: Path) -> list[str]:
    return ALPHA158.codes(qlib_dir)


@pytest.fixture(scope="module")
def reference(request: pytest.FixtureRequest, qlib_dir: Path) -> pl.DataFrame:
    """pyqlib's raw Alpha158 + LABEL0 (no processors), cached in pytest's cache directory (see
    ``tests/pyqlib_references.py``)."""
    frames = pyqlib_reference(request, qlib_dir, ALPHA158)
    return frames["raw"]


@pytest.fixture(scope="module")
def ours(qlib_dir: Path) -> pl.DataFrame:
    from hikyuu_qlib.stores.qlib.store import QlibStore

    store = QlibStore.open(qlib_dir)
    universe = Universe.from_codes(_codes(qlib_dir))
    return compute_features(store, universe, DateRange.of(START, END))


def test_same_rows_and_columns(reference: pl.DataFrame, ours: pl.DataFrame) -> None:
    assert ours.columns == ["code", "datetime", *alpha158_names(), LABEL]
    assert reference.columns[2:] == [*alpha158_names(), LABEL]
    assert ours.select("code", "datetime").equals(reference.select("code", "datetime"))
    assert ours.height > 30 * 480
    assert ours["datetime"].min() >= dt.datetime(2017, 1, 1)


@pytest.mark.parametrize("name", [*alpha158_names(), LABEL])
def test_column_matches_qlib(reference: pl.DataFrame, ours: pl.DataFrame, name: str) -> None:
    expected = reference[name].cast(pl.Float64).to_numpy()
    actual = ours[name].cast(pl.Float64).to_numpy()
    nan_e, nan_a = np.isnan(expected), np.isnan(actual)
    assert (nan_e == nan_a).all(), f"{name}: NaN pattern differs in {(nan_e != nan_a).sum()} rows"
    both = ~nan_e
    assert both.sum() > 0 or name == "VWAP0"
    inf_e, inf_a = np.isinf(expected[both]), np.isinf(actual[both])
    assert (inf_e == inf_a).all(), f"{name}: ±inf pattern differs in {(inf_e != inf_a).sum()} rows"
    assert (expected[both][inf_e] == actual[both][inf_a]).all(), f"{name}: an inf of the other sign"
    e, a = expected[both][~inf_e], actual[both][~inf_a]
    diff = np.abs(e - a)
    limit = np.maximum(1e-4 * np.abs(e), 1e-6)
    worst = np.argmax(diff - limit) if diff.size else 0
    assert (diff <= limit).all(), (
        f"{name}: {(diff > limit).sum()} cells differ, e.g. {e[worst]} vs {a[worst]}"
    )


def test_running_variance_residuals_are_pandas(reference: pl.DataFrame, ours: pl.DataFrame) -> None:
    """In all-zero windows pyqlib's Std is pandas' rounding residual, not 0; ours is the same float32."""
    for (name, code), day in RESIDUALS.items():
        row = (pl.col("code") == code) & (pl.col("datetime") == dt.datetime.strptime(day, "%Y-%m-%d"))
        expected = reference.filter(row)[name].item()
        assert expected > 0.0, f"{name} {code} {day}: pyqlib's value is no residual ({expected})"
        assert ours.filter(row)[name].item() == expected, f"{name} {code} {day}"
