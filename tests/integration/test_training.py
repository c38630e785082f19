"""Training on the real Qlib store: ~50 CSI300 codes, short segments, few rounds, SQLite registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from tests.cache_support import disk_cache, entries

from hikyuu_qlib.cache.tiered import TieredCache
from hikyuu_qlib.domain import DateRange, Segments
from hikyuu_qlib.domain.errors import HQError
from hikyuu_qlib.domain.model import ModelStatus, ModelType
from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling.dataset import RAW_LABEL, decode_state, prepare_frame
from hikyuu_qlib.modelling.predictor import Predictor
from hikyuu_qlib.modelling.presets import ProcessorStep, get_preset
from hikyuu_qlib.modelling.service import TrainSpec, train_and_register
from hikyuu_qlib.registry import LocalArtifactStore, ModelRegistry
from hikyuu_qlib.stores.qlib import QlibStore

SEGMENTS = Segments.parse("2016-01-01:2017-06-30", "2017-07-01:2017-09-30", "2017-10-01:2017-12-31")
ROUNDS = 12


@pytest.fixture(scope="module")
def store(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


@pytest.fixture(scope="module")
def universe(store: QlibStore) -> Universe:
    full = Universe.from_store(store, "csi300")
    codes = full.members_between(DateRange.of("2016-01-01", "2017-12-31"))[:50]
    return Universe("csi300-first50", full.membership.filter(pl.col("code").is_in(codes)))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRegistry, LocalArtifactStore, TieredCache]:
    root = tmp_path_factory.mktemp("training")
    registry = ModelRegistry(f"sqlite:///{root / 'registry.db'}").open()
    yield registry, LocalArtifactStore(root / "artifacts"), disk_cache(root / "cache")  # type: ignore[misc]
    registry.close()


def _train(store: QlibStore, universe: Universe, env: tuple, seed: int = 0, **kw: object):  # type: ignore[no-untyped-def]
    registry, artifacts, cache = env
    spec = TrainSpec(f"test-{seed}", SEGMENTS, seed=seed, num_threads=2, num_boost_round=ROUNDS, **kw)  # type: ignore[arg-type]
    return train_and_register(
        spec, store=store, universe=universe, registry=registry, artifacts=artifacts, cache=cache
    )


@pytest.fixture(scope="module")
def first(store: QlibStore, universe: Universe, env: tuple):  # type: ignore[no-untyped-def]
    return _train(store, universe, env)


def test_record_holds_metrics_artifact_and_config(first, env) -> None:  # type: ignore[no-untyped-def]
    registry, artifacts, _ = env
    model = registry.get(first.model.id)
    assert model.status is ModelStatus.TRAINED and model.model_type is ModelType.LIGHTGBM
    assert model.feature_set == "alpha158" and model.universe == "csi300-first50"
    assert model.segments.to_json()["test"] == ["2017-10-01", "2017-12-31"]
    assert model.hyperparameters["params"]["learning_rate"] == 0.2
    assert model.hyperparameters["params"]["seed"] == 0 and model.hyperparameters["num_boost_round"] == ROUNDS
    assert len(model.config_hash) == 64
    for segment in ("train", "valid", "test"):
        names = {"ic", "icir", "rank_ic", "rank_icir", "mse_learn_label", "mse_raw_label", "days"}
        assert set(model.metrics[segment]) >= names
    assert model.metrics["ic"] == model.metrics["test"]["ic"]
    assert model.metrics["train"]["ic"] > model.metrics["test"]["ic"]  # in-sample fit is better
    assert 1 <= model.metrics["best_iteration"] <= ROUNDS
    assert set(model.artifacts) == {"model", "processors", "importance"}
    assert model.artifact == model.artifacts["model"]
    text = artifacts.get_bytes(model.artifacts["model"]).decode()
    assert text.startswith("tree") and "[num_leaves: 210]" in text
    assert not {
        t for t in model.tags if t.startswith("processors_")
    }  # the processors are an artifact, not tags
    steps, features, _ = decode_state(artifacts.get_bytes(model.artifacts["processors"]))
    assert steps == [] and len(features) == 158


def test_metrics_are_ic_of_raw_label_per_day(first) -> None:  # type: ignore[no-untyped-def]
    booster = first.result.booster
    rows = first.data.view("test", "infer")
    x = rows.select(first.data.features).to_numpy()
    pdf = rows.select("datetime", "code", RAW_LABEL).to_pandas()
    pdf["score"] = booster.predict(x)
    ic = pdf.groupby("datetime").apply(lambda d: d["score"].corr(d[RAW_LABEL]))
    assert first.metrics["test"]["ic"] == pytest.approx(ic.mean(), rel=1e-9)


def test_deterministic_for_a_seed_and_features_come_from_the_cache(first, store, universe, env) -> None:  # type: ignore[no-untyped-def]
    registry, artifacts, cache = env
    cached = entries(cache.directory)
    computed = cache.counters().computed
    again = _train(store, universe, env)
    assert cached and entries(cache.directory) == cached  # same key: read, not recomputed
    assert cache.counters().computed == computed
    assert again.model.id != first.model.id and again.model.version == 2
    predictor = Predictor(registry, artifacts)
    rows = first.data.view("test", "infer")
    a = predictor.predict_frame(first.model.id, rows)
    b = predictor.predict_frame(again.model.id, rows)
    assert a["score"].to_list() == b["score"].to_list()
    assert again.model.artifact == first.model.artifact  # same model text, same content address


def test_another_seed_gives_another_model(first, store, universe, env) -> None:  # type: ignore[no-untyped-def]
    other = _train(store, universe, env, seed=11)
    assert other.model.artifact is not None and first.model.artifact is not None
    assert other.model.artifact.sha256 != first.model.artifact.sha256


def test_failure_marks_the_record_failed(store, universe, env) -> None:  # type: ignore[no-untyped-def]
    registry, artifacts, _cache = env
    spec = TrainSpec("doomed", Segments.parse("2016-01-01:2016-06-30"), num_boost_round=2)
    nobody = Universe.from_codes(["SH699999"])  # no data: the training data is empty
    with pytest.raises(HQError, match="no rows"):  # after the record was created
        train_and_register(spec, store=store, universe=nobody, registry=registry, artifacts=artifacts)
    from hikyuu_qlib.domain.queries import ModelFilter

    (record,) = registry.find(ModelFilter(name="doomed")).items
    assert record.status is ModelStatus.FAILED


def test_a_spec_that_cannot_train_creates_no_record(store, universe, env) -> None:  # type: ignore[no-untyped-def]
    registry, artifacts, _cache = env
    from hikyuu_qlib.domain.queries import ModelFilter

    for name, segments, extra in (
        ("no-days", Segments.parse("1995-01-01:1995-06-30"), {}),
        ("negative-seed", SEGMENTS, {"seed": -1}),
        ("no-threads", SEGMENTS, {"num_threads": 0}),
    ):
        spec = TrainSpec(name, segments, num_boost_round=2, **extra)  # type: ignore[arg-type]
        with pytest.raises(HQError):
            train_and_register(spec, store=store, universe=universe, registry=registry, artifacts=artifacts)
        assert registry.find(ModelFilter(name=name)).items == []


def test_processors_fit_on_train_only_and_learn_view_is_qlib_ordered(first) -> None:  # type: ignore[no-untyped-def]
    raw = first.data.infer.drop(RAW_LABEL)
    steps = (ProcessorStep("robust_zscore"), ProcessorStep("fillna"))
    data = prepare_frame(raw, SEGMENTS, infer=steps, learn=get_preset("qlib-lgb-alpha158").learn)
    median = data.infer_chain.steps[0].median  # type: ignore[attr-defined]
    train = raw.filter(pl.col("datetime").is_between(SEGMENTS["train"].start, SEGMENTS["train"].end))
    names = data.features
    fit = train.select(pl.col(c).fill_nan(None).median() for c in names).row(0)
    whole = raw.select(pl.col(c).fill_nan(None).median() for c in names).row(0)
    assert [median[c] for c in names] == pytest.approx(
        [float("nan") if v is None else v for v in fit], nan_ok=True
    )
    assert sum(median[c] != pytest.approx(w, nan_ok=True) for c, w in zip(names, whole, strict=True)) > 100
    assert data.infer.select(pl.col("KMID").abs().max()).item() <= 3.0
    assert data.learn[LABEL].null_count() == 0 and not data.learn[LABEL].is_nan().any()
    day = data.learn.filter(pl.col("datetime") == data.learn["datetime"][0])[LABEL].to_numpy()
    assert abs(day.mean()) < 1e-5 and day.std(ddof=1) == pytest.approx(1.0, rel=1e-4)
    keys = data.learn.select("datetime", "code")
    assert keys.equals(keys.sort("datetime", "code"))
    _, _, restored = decode_state(data.state_bytes())
    np.testing.assert_array_equal(restored.transform(raw)["KMID"].to_numpy(), data.infer["KMID"].to_numpy())
