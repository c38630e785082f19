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


@pytest.fixture(scope="module")
def dataset(store, universe, frame, pyqlib):  # type: ignore[no-untyped-def]
    """Our features as pyqlib's ``DatasetH`` (Alpha158's default processors); models only read it."""
    return make_dataset(store, universe, SEGMENTS, frame=frame)


def test_lgbmodel_fits_and_predicts_on_our_dataset(frame, dataset, recorder) -> None:  # type: ignore[no-untyped-def]
    from qlib.contrib.model.gbdt import LGBModel
    from qlib.data.dataset.handler import DataHandlerLP

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


# --- the model zoo fed as pyqlib's models are fed ------------------------------------------------------

#: kind → (preset, small-budget overrides of the model's parameters)
ZOO = {
    "xgb": ("qlib-xgb-alpha158", {"max_depth": 4}),
    "catboost": ("qlib-catboost-alpha158", {"max_depth": 4}),
    "double_ensemble": ("qlib-double-ensemble-alpha158", {"epochs": 3, "num_models": 2}),
}
ROUNDS, STOPPING = 30, 5


def _pyqlib_model(kind: str, params: dict[str, Any], tmp_path: Path) -> Any:
    """pyqlib's model of ``kind`` with our preset's parameters (as the research suite builds it)."""
    if kind == "xgb":
        from qlib.contrib.model.xgboost import XGBModel

        return XGBModel(**params)
    if kind == "catboost":
        from qlib.contrib.model.catboost_model import CatBoostModel

        options = dict(params)
        return CatBoostModel(loss=options.pop("loss_function"), **options, train_dir=str(tmp_path / "cb"))
    import pandas as pd
    from qlib.contrib.model.double_ensemble import DEnsembleModel

    class Ordered(DEnsembleModel):  # type: ignore[misc]
        """pyqlib's model, its selected features in the frame's column order (it returns a set, whose
        order follows the string hash): the same draws, a reproducible column order."""

        def feature_selection(self, df_train: Any, loss_values: Any) -> Any:
            chosen = set(super().feature_selection(df_train, loss_values))
            return pd.Index([f for f in df_train["feature"].columns if f in chosen])

    options = {k: v for k, v in params.items() if k != "objective"}
    return Ordered(base_model="gbm", loss="mse", **options)


def test_zoo_fit_is_pyqlibs_model_on_the_same_data(frame, dataset, recorder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Our presets' dataset is pyqlib's (same rows, order, features and labels, bit for bit),
    and each family's fit on pyqlib's own matrices is pyqlib's model: the parameters as the library sees
    them, the rounds, the best iteration, the selected features, the scores."""
    from qlib.data.dataset.handler import DataHandlerLP

    from hikyuu_qlib.modelling.dataset import labels, matrix, prepare_frame
    from hikyuu_qlib.modelling.families import FitInput, family
    from hikyuu_qlib.modelling.presets import get_preset, qlib_default_learn

    train, valid = dataset.prepare(
        ["train", "valid"], col_set=["feature", "label"], data_key=DataHandlerLP.DK_L
    )
    test = dataset.prepare("test", col_set="feature", data_key=DataHandlerLP.DK_I).to_numpy(np.float32)
    ours = prepare_frame(frame, SEGMENTS, learn=qlib_default_learn())  # the three presets' processors
    assert list(train["feature"].columns) == ours.features
    for theirs, view in ((train, ours.view("train")), (valid, ours.view("valid"))):
        assert view["code"].to_list() == theirs.index.get_level_values("instrument").tolist()
        np.testing.assert_array_equal(matrix(view, ours.features), theirs["feature"].to_numpy(np.float32))
        np.testing.assert_array_equal(labels(view), theirs["label"].to_numpy(np.float32).ravel())

    def xy(df: Any) -> tuple[Any, Any]:
        return df["feature"].to_numpy(np.float32), df["label"].to_numpy(np.float32).ravel()

    for kind, (name, overrides) in ZOO.items():
        preset = get_preset(name)
        assert preset.infer == () and preset.learn == qlib_default_learn() and preset.process == "append"
        params = preset.family_params(seed=0, num_threads=2, overrides=overrides)
        model = _pyqlib_model(kind, params, tmp_path)
        np.random.seed(0)  # DEnsembleModel shuffles and draws with NumPy's global generator
        if kind == "double_ensemble":
            model.fit(dataset)
        else:
            model.fit(dataset, num_boost_round=ROUNDS, early_stopping_rounds=STOPPING, verbose_eval=0)
        fitted = family(preset.model_type).fit(
            FitInput(xy(train), xy(valid), ours.features, params, ROUNDS, STOPPING, seed=0, num_threads=2)
        )
        if kind == "xgb":
            assert fitted.best_iteration == model.model.best_iteration + 1
            assert fitted.model.native.num_boosted_rounds() == model.model.num_boosted_rounds()
        elif kind == "catboost":
            assert fitted.best_iteration == model.model.get_best_iteration() + 1
            mine, theirs = fitted.model.native.get_all_params(), model.model.get_all_params()
            differ = {k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)}
            assert differ <= {"train_dir", "logging_level", "allow_writing_files", "metric_period"}, differ
        else:
            assert fitted.model.sub_features == [list(map(str, f)) for f in model.sub_features]
        expected = model.predict(dataset, "test").to_numpy()
        np.testing.assert_allclose(fitted.model.predict(test), expected, rtol=1e-6, atol=1e-9, err_msg=kind)
