"""The Qlib bridge: Qlib's own models (LGBModel, DEnsembleModel) train on our handler and dataset."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import DateRange, Segments
from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling.bars_source import BarsFeatureSource
from hikyuu_qlib.modelling.qlib_bridge import make_dataset, to_qlib_frame
from hikyuu_qlib.modelling.qlib_form import from_qlib
from hikyuu_qlib.stores.qlib import QlibStore

SEGMENTS = Segments.parse("2016-01-01:2016-12-31", "2017-01-01:2017-03-31", "2017-04-01:2017-06-30")


@pytest.fixture(scope="module")
def store(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


@pytest.fixture(scope="module")
def universe(store: QlibStore) -> Universe:
    full = Universe.from_store(store, "csi300")
    codes = full.members_between(SEGMENTS.span())[:40]
    return Universe("csi300-first40", full.membership.filter(pl.col("code").is_in(codes)))


@pytest.fixture(scope="module")
def frame(store: QlibStore, universe: Universe) -> pl.DataFrame:
    return compute_features(store, universe, SEGMENTS.span())


@pytest.fixture
def recorder(pyqlib: Any, tmp_path: Path):  # type: ignore[no-untyped-def]
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from qlib.workflow import R

    with R.start(experiment_name="bridge", uri=f"file:{tmp_path / 'mlruns'}"):
        yield R


def test_handler_layout_matches_our_frame(frame: pl.DataFrame) -> None:
    df = to_qlib_frame(frame)
    assert list(df.index.names) == ["datetime", "instrument"] and df.index.is_monotonic_increasing
    assert df.columns.get_level_values(0).unique().tolist() == ["feature", "label"]
    assert df.shape == (frame.height, 159) and str(df.dtypes.iloc[0]) == "float32"
    back = frame.sort("datetime", "code")
    np.testing.assert_array_equal(df[("feature", "ROC20")].to_numpy(), back["ROC20"].to_numpy())
    np.testing.assert_array_equal(df[("label", LABEL)].to_numpy(), back[LABEL].to_numpy())


def test_lgbmodel_fits_and_predicts_on_our_dataset(store, universe, frame, recorder) -> None:  # type: ignore[no-untyped-def]
    from qlib.contrib.model.gbdt import LGBModel
    from qlib.data.dataset.handler import DataHandlerLP

    dataset = make_dataset(store, universe, SEGMENTS, frame=frame)
    learn = dataset.prepare("train", col_set="label", data_key=DataHandlerLP.DK_L)
    assert learn.notna().all().all()  # DropnaLabel
    day = learn.xs(learn.index.get_level_values(0)[0], level="datetime").iloc[:, 0]
    assert abs(day.mean()) < 1e-5 and day.std() == pytest.approx(1.0, rel=1e-4)  # CSZScoreNorm(label)
    model = LGBModel(num_boost_round=15, early_stopping_rounds=5, num_threads=2, seed=1, lambda_l1=1.0)
    model.fit(dataset)
    pred = model.predict(dataset, "test")
    assert (
        len(pred)
        == frame.filter(pl.col("datetime").is_between(SEGMENTS["test"].start, SEGMENTS["test"].end)).height
    )
    scores = from_qlib(pred)
    assert scores.columns == ["datetime", "code", "score"] and scores["score"].n_unique() > 10


def test_double_ensemble_fits_and_predicts_on_bars_source(store, universe, recorder) -> None:  # type: ignore[no-untyped-def]
    from qlib.contrib.model.double_ensemble import DEnsembleModel

    bars = BarsFeatureSource(store)  # the same bridge over any market data store
    segments = {"train": SEGMENTS["train"], "valid": SEGMENTS["valid"], "test": SEGMENTS["test"]}
    dataset = make_dataset(bars, universe, segments)
    model = DEnsembleModel(
        num_models=2,
        epochs=5,
        enable_fs=False,
        enable_sr=True,
        num_threads=2,
        lambda_l1=1.0,
        bins_fs=3,
        sample_ratios=[0.8, 0.7, 0.6],
        decay=0.5,
        sub_weights=[1, 1],
        verbosity=-1,
    )
    model.fit(dataset)
    pred = model.predict(dataset, "test")
    assert pred.index.names == ["datetime", "instrument"] and len(pred) > 1000
    assert np.isfinite(pred.to_numpy()).all() and pred.nunique() > 10
    assert pred.index.get_level_values("datetime").min() >= DateRange.of("2017-04-01").start
