"""Every model family on the real Qlib store: ~40 CSI300 codes, short segments, small budgets.

Each preset trains, registers (status, type, hyperparameters), stores its model in its library's own
format (never pickle) with its feature importance, and a fresh predictor loads the artifact back and
scores exactly what the trained model scored.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.domain import DateRange, Segments
from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import IMPORTANCE_ARTIFACT, ModelStatus, ModelType
from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling.dataset import matrix
from hikyuu_qlib.modelling.importance import load_importance
from hikyuu_qlib.modelling.predictor import Predictor
from hikyuu_qlib.modelling.presets import PRESETS, ProcessorStep, get_preset, parse_param
from hikyuu_qlib.modelling.service import TrainSpec, train_and_register
from hikyuu_qlib.registry import LocalArtifactStore, ModelRegistry
from hikyuu_qlib.stores.qlib import QlibStore

SEGMENTS = Segments.parse("2016-01-01:2017-06-30", "2017-07-01:2017-09-30", "2017-10-01:2017-12-31")
TEST = SEGMENTS["test"]

#: preset → (model type, small-budget overrides, importance kinds, how the artifact begins)
CASES: dict[str, tuple[ModelType, dict[str, Any], set[str], bytes]] = {
    "qlib-lgb-alpha158": (ModelType.LIGHTGBM, {"num_boost_round": 12}, {"gain", "split"}, b"tree\n"),
    "qlib-xgb-alpha158": (ModelType.XGBOOST, {"n_estimators": 15, "max_depth": 3}, {"gain", "split"}, b"{"),
    "qlib-catboost-alpha158": (
        ModelType.CATBOOST,
        {"num_boost_round": 25, "max_depth": 4},
        {"prediction_values_change", "split"},
        b"CBM1",
    ),
    "qlib-linear-alpha158": (ModelType.LINEAR, {}, {"coef"}, b'{"format": "hikyuu-qlib.linear/1"'),
    "qlib-linear-ridge-alpha158": (ModelType.LINEAR, {}, {"coef"}, b'{"format": "hikyuu-qlib.linear/1"'),
    "qlib-linear-lasso-alpha158": (
        ModelType.LINEAR,
        {"alpha": 1e-4},
        {"coef"},
        b'{"format": "hikyuu-qlib.linear/1"',
    ),
    "qlib-mlp-alpha158": (
        ModelType.MLP,
        {"max_steps": 60, "batch_size": 512, "eval_steps": 20},
        set(),
        b"",  # safetensors: an 8-byte header length, then its JSON header
    ),
    "qlib-mlp-alpha158-norm": (
        ModelType.MLP,
        {"max_steps": 60, "batch_size": 512, "eval_steps": 20},
        set(),
        b"",
    ),
    "qlib-double-ensemble-alpha158": (
        ModelType.DOUBLE_ENSEMBLE,
        {"epochs": 6, "num_models": 2},
        {"gain", "split"},
        b'{"format": "hikyuu-qlib.double-ensemble/1"',
    ),
}


#: Spec overrides: the MLP preset feeds the network raw Alpha158, whose zero-volume days (VMA/VSTD ~1e20)
#: overflow BatchNorm and are refused (tests/integration/test_mlp_batchnorm.py); the round trip needs a
#: network that scores rows differently, so its features are normalised on both views (the processors of
#: qlib-mlp-alpha158-norm, which trains as it is, but with a z-scored label as Qlib's MLP configuration).
_NORMALISED = (ProcessorStep("robust_zscore", "feature"), ProcessorStep("fillna", "feature"))
SPEC: dict[str, dict[str, Any]] = {
    "qlib-mlp-alpha158": {
        "infer": _NORMALISED,
        "learn": (*_NORMALISED, ProcessorStep("dropna_label", "label"), ProcessorStep("cs_zscore", "label")),
    },
}


@pytest.fixture(scope="module")
def store(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


@pytest.fixture(scope="module")
def universe(store: QlibStore) -> Universe:
    full = Universe.from_store(store, "csi300")
    codes = full.members_between(DateRange.of("2016-01-01", "2017-12-31"))[:40]
    return Universe("csi300-first40", full.membership.filter(pl.col("code").is_in(codes)))


@pytest.fixture(scope="module")
def frame(store: QlibStore, universe: Universe) -> pl.DataFrame:
    return compute_features(store, universe, SEGMENTS.span(), "alpha158", label=True)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRegistry, LocalArtifactStore]:
    root = tmp_path_factory.mktemp("families")
    registry = ModelRegistry(f"sqlite:///{root / 'registry.db'}").open()
    yield registry, LocalArtifactStore(root / "artifacts")  # type: ignore[misc]
    registry.close()


def _library(name: str) -> None:
    """Skip when an optional library is absent, except under CI (the test extra installs them all)."""
    if os.environ.get("CI"):
        importlib.import_module(name)
    else:
        pytest.importorskip(name)


def _train(store, universe, env, frame, preset: str, **kw: Any):  # type: ignore[no-untyped-def]
    registry, artifacts = env
    params = dict(CASES[preset][1])
    params.update(kw.pop("params", {}))
    spec = TrainSpec(f"zoo-{preset}", SEGMENTS, preset=preset, num_threads=2, params=params, **kw)
    return train_and_register(
        spec, store=store, universe=universe, registry=registry, artifacts=artifacts, frame=frame
    )


def test_every_preset_has_a_case() -> None:
    # the Alpha360 presets train on their own features: tests/e2e/test_cli_alpha360.py round-trips them
    on_alpha158 = {name for name, preset in PRESETS.items() if preset.feature_set == "alpha158"}
    assert on_alpha158 == set(CASES)
    assert set(PRESETS) - on_alpha158 == {"qlib-lgb-alpha360"}


@pytest.mark.parametrize("preset", list(CASES))
def test_preset_trains_registers_and_round_trips(store, universe, env, frame, preset) -> None:  # type: ignore[no-untyped-def]
    _library({"qlib-xgb-alpha158": "xgboost", "qlib-catboost-alpha158": "catboost",
              "qlib-mlp-alpha158": "torch", "qlib-mlp-alpha158-norm": "torch"}.get(preset, "numpy"))  # fmt: skip
    registry, artifacts = env
    kind, _, kinds, head = CASES[preset]
    outcome = _train(store, universe, env, frame, preset, **SPEC.get(preset, {}))
    model = registry.get(outcome.model.id)
    assert model.status is ModelStatus.TRAINED and model.model_type is kind
    assert model.hyperparameters["preset"] == preset and model.feature_set == "alpha158"
    for segment in ("train", "valid", "test"):
        assert np.isfinite(model.metrics[segment]["ic"]) and model.metrics[segment]["days"] > 0
    data = artifacts.get_bytes(model.artifacts["model"])
    assert not data.startswith(b"\x80"), "a pickle"
    if kind is ModelType.MLP:
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
        assert header["__metadata__"]["format"] == "hikyuu-qlib.mlp/1"
        assert header["__metadata__"]["input_dim"] == "157"  # VWAP0 dropped, as Qlib's configuration
    else:
        assert data.startswith(head), data[:40]
    importance = load_importance(model, artifacts)
    if kinds:
        assert importance is not None and set(importance) == kinds
        assert all(len(values) == len(outcome.data.features) for values in importance.values())
        assert any(v != 0 for v in next(iter(importance.values())).values())
    else:
        assert IMPORTANCE_ARTIFACT not in model.artifacts
    # a fresh predictor loads the artifact and scores the raw test features as the trained model did
    raw = frame.filter(pl.col("datetime").is_between(TEST.start, TEST.end)).drop(LABEL)
    loaded = Predictor(registry, artifacts).predict_frame(model.id, raw)
    test = outcome.data.view("test", "infer")
    direct = test.select("datetime", "code").with_columns(
        pl.Series("expected", outcome.result.model.predict(matrix(test, outcome.data.features)))
    )
    both = loaded.join(direct, on=["datetime", "code"], how="inner")
    assert both.height == direct.height == loaded.height > 0
    np.testing.assert_allclose(both["score"].to_numpy(), both["expected"].to_numpy(), rtol=1e-6, atol=1e-9)


def test_linear_variants_differ_and_ridge_shrinks(store, universe, env, frame) -> None:  # type: ignore[no-untyped-def]
    registry, artifacts = env
    coefs = {}
    for preset in ("qlib-linear-alpha158", "qlib-linear-ridge-alpha158"):
        outcome = _train(
            store, universe, env, frame, preset, params={"alpha": 1e5} if "ridge" in preset else {}
        )
        coefs[preset] = np.array(
            list(load_importance(registry.get(outcome.model.id), artifacts)["coef"].values())
        )  # type: ignore[index]
    assert np.linalg.norm(coefs["qlib-linear-ridge-alpha158"]) < np.linalg.norm(coefs["qlib-linear-alpha158"])


def test_unknown_parameter_is_refused_before_any_record(store, universe, env, frame) -> None:  # type: ignore[no-untyped-def]
    registry, _ = env
    before = len(registry.find(limit=1000).items)
    with pytest.raises(
        InvalidInputError, match=r"unknown parameter\(s\) num_leafs for preset qlib-lgb-alpha158"
    ):
        _train(store, universe, env, frame, "qlib-lgb-alpha158", params={"num_leafs": 64})
    with pytest.raises(InvalidInputError, match="num_boost_round"):  # no rounds for a linear model
        _train(store, universe, env, frame, "qlib-linear-alpha158", params={"num_boost_round": 5})
    with pytest.raises(InvalidInputError, match="Poisson runs on GPU only"):
        _train(store, universe, env, frame, "qlib-catboost-alpha158", params={"bootstrap_type": "Poisson"})
    assert len(registry.find(limit=1000).items) == before


def test_parameter_override_reaches_the_model(store, universe, env, frame) -> None:  # type: ignore[no-untyped-def]
    registry, artifacts = env
    outcome = _train(store, universe, env, frame, "qlib-lgb-alpha158", params={"num_leaves": 7})
    model = registry.get(outcome.model.id)
    assert model.hyperparameters["params"]["num_leaves"] == 7
    assert "[num_leaves: 7]" in artifacts.get_bytes(model.artifacts["model"]).decode()


def test_parse_param_types() -> None:
    assert parse_param("num_leaves=64") == ("num_leaves", 64)
    assert parse_param("learning_rate=0.05") == ("learning_rate", 0.05)
    assert parse_param("enable_fs=false") == ("enable_fs", False)
    assert parse_param("sample_ratios=0.8,0.7") == ("sample_ratios", [0.8, 0.7])
    assert parse_param("estimator=ridge") == ("estimator", "ridge")
    with pytest.raises(InvalidInputError, match="KEY=VALUE"):
        parse_param("num_leaves")
    assert "num_leaves" in get_preset("qlib-lgb-alpha158").known_params()


def test_training_from_a_features_file(env, frame, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from hikyuu_qlib.modelling.features_file import read_features_file

    registry, artifacts = env
    mine = frame.select("datetime", "code", "KMID", "ROC5", "STD20", "VSTD5", pl.col(LABEL).alias("fwd"))
    path = tmp_path / "mine.parquet"
    mine.write_parquet(path)
    loaded = read_features_file(path, "fwd")
    assert loaded.columns == ["datetime", "code", "KMID", "ROC5", "STD20", "VSTD5", LABEL]
    codes = loaded["code"].unique().to_list()
    spec = TrainSpec("from-file", SEGMENTS, preset="qlib-linear-alpha158", feature_set="file:mine.parquet",
                     tags={"source": f"file:{path}"})  # fmt: skip
    outcome = train_and_register(
        spec,
        store=None,
        universe=Universe.from_codes(codes, name="file:mine"),
        registry=registry,
        artifacts=artifacts,
        frame=loaded,
    )
    model = registry.get(outcome.model.id)
    assert model.status is ModelStatus.TRAINED and model.feature_set == "file:mine.parquet"
    assert outcome.data.features == ["KMID", "ROC5", "STD20", "VSTD5"]
    assert set(load_importance(model, artifacts)["coef"]) == {"KMID", "ROC5", "STD20", "VSTD5"}  # type: ignore[index]
    with pytest.raises(InvalidInputError, match=r"missing column\(s\) nope"):
        read_features_file(path, "nope")
    with pytest.raises(InvalidInputError, match="has no day in the features frame"):
        train_and_register(
            TrainSpec("late", Segments.parse("2030-01-01:2030-06-30"), preset="qlib-linear-alpha158"),
            store=None, universe=Universe.from_codes(codes, name="file:mine"), registry=registry, artifacts=artifacts, frame=loaded,
        )  # fmt: skip
