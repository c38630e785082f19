"""Alpha360 and its label against pyqlib's own Alpha360 handler on the real Qlib store: the raw features,
and the views its default processors make (infer: ProcessInf, ZScoreNorm, Fillna over every column;
learn: DropnaLabel, CSZScoreNorm of the label). Same tolerance rules as the Alpha158 parity test."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.conftest import pyqlib_reference
from tests.pyqlib_references import ALPHA360

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.factors.alpha360 import DEFAULT_INFER, DEFAULT_LEARN, FIELDS, LAGS, alpha360_names
from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling.dataset import prepare_frame
from hikyuu_qlib.modelling.presets import ProcessorStep

pytestmark = pytest.mark.qlib

# Smaller than the Alpha158 test (see ALPHA360): 12 codes over 7 months.
START, END, FIT_END = ALPHA360.start, ALPHA360.end, ALPHA360.fit_end
N_CODES = ALPHA360.n_codes
GROUPS = [*FIELDS, LABEL]


def _codes(qlib_dir: Path) -> list[str]:
    return ALPHA360.codes(qlib_dir)


@pytest.fixture(scope="module")
def reference(request: pytest.FixtureRequest, qlib_dir: Path) -> dict[str, pl.DataFrame]:
    """pyqlib's Alpha360 + LABEL0: raw (no processors) and its default infer and learn views, cached in
    pytest's cache directory (built by the session's background process when it started one: see
    ``tests/pyqlib_references.py``)."""
    frames = pyqlib_reference(request, qlib_dir, ALPHA360)
    return frames


@pytest.fixture(scope="module")
def ours(qlib_dir: Path) -> pl.DataFrame:
    from hikyuu_qlib.stores.qlib.store import QlibStore

    store = QlibStore.open(qlib_dir)
    universe = Universe.from_codes(_codes(qlib_dir))
    return compute_features(store, universe, DateRange.of(START, END), "alpha360")


@pytest.fixture(scope="module")
def views(ours: pl.DataFrame) -> dict[str, pl.DataFrame]:
    prepared = prepare_frame(
        ours,
        {"train": DateRange.of(START, FIT_END), "test": DateRange.of("2019-01-02", END)},
        infer=[ProcessorStep(name, fields) for name, fields in DEFAULT_INFER],
        learn=[ProcessorStep(name, fields) for name, fields in DEFAULT_LEARN],
    )
    return {
        "infer": prepared.infer.drop("LABEL_RAW").sort("code", "datetime"),
        "learn": prepared.learn.drop("LABEL_RAW").sort("code", "datetime"),
    }


def _columns(group: str) -> list[str]:
    return [LABEL] if group == LABEL else [f"{group}{lag}" for lag in range(LAGS - 1, -1, -1)]


def _assert_matches(expected_frame: pl.DataFrame, actual_frame: pl.DataFrame, names: list[str]) -> None:
    """Each column: the same NaN cells, and every other cell within 1e-4 relative or 1e-6 absolute."""
    for name in names:
        expected = expected_frame[name].cast(pl.Float64).to_numpy()
        actual = actual_frame[name].cast(pl.Float64).to_numpy()
        nan_e, nan_a = np.isnan(expected), np.isnan(actual)
        assert (nan_e == nan_a).all(), f"{name}: NaN pattern differs in {(nan_e != nan_a).sum()} rows"
        both = ~nan_e
        diff = np.abs(expected[both] - actual[both])
        limit = np.maximum(1e-4 * np.abs(expected[both]), 1e-6)
        worst = int(np.argmax(diff - limit)) if diff.size else 0
        assert (diff <= limit).all(), (
            f"{name}: {(diff > limit).sum()} cells differ, e.g. {expected[both][worst]} vs {actual[both][worst]}"
        )


def test_same_rows_and_columns(reference: dict[str, pl.DataFrame], ours: pl.DataFrame) -> None:
    names = alpha360_names()
    assert len(names) == 360 and names[:2] == ["CLOSE59", "CLOSE58"] and names[-1] == "VOLUME0"
    assert ours.columns == ["code", "datetime", *names, LABEL]
    assert reference["raw"].columns[2:] == [*names, LABEL]
    assert ours.select("code", "datetime").equals(reference["raw"].select("code", "datetime"))
    assert ours.height > N_CODES * 110
    assert ours["datetime"].min() >= dt.datetime.fromisoformat(START)


@pytest.mark.parametrize("group", GROUPS)
def test_raw_columns_match_qlib(reference: dict[str, pl.DataFrame], ours: pl.DataFrame, group: str) -> None:
    names = _columns(group)
    if group != "VWAP":  # the store has no $vwap: every VWAP cell is NaN on both sides
        assert all(ours[n].is_not_nan().sum() > 0 for n in names)
    _assert_matches(reference["raw"], ours, names)


def test_history_before_the_start_date_is_read(ours: pl.DataFrame) -> None:
    """On the first day, lag 59 reads 59 trading days back (Qlib's extended window), not NaN."""
    first = ours.filter(pl.col("datetime") == ours["datetime"].min())
    assert first["CLOSE59"].is_not_nan().sum() >= N_CODES - 2


@pytest.mark.parametrize("view", ["infer", "learn"])
@pytest.mark.parametrize("group", GROUPS)
def test_default_processors_match_qlib(
    reference: dict[str, pl.DataFrame], views: dict[str, pl.DataFrame], view: str, group: str
) -> None:
    expected, actual = reference[view], views[view]
    assert actual.select("code", "datetime").equals(expected.select("code", "datetime"))
    _assert_matches(expected, actual, _columns(group))
