"""Prediction from registered models: frame schema, files, Qlib form, the LRU of loaded models, and
Alpha158 on Hikyuu and synthetic bars through BarsFeatureSource."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.app import open_store
from hikyuu_qlib.domain import DateRange, Segments
from hikyuu_qlib.domain.model import ArtifactRef
from hikyuu_qlib.factors.alpha158 import alpha158_names
from hikyuu_qlib.factors.pipeline import compute_features
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling.bars_source import BarsFeatureSource
from hikyuu_qlib.modelling.predictor import Predictor, write_predictions
from hikyuu_qlib.modelling.qlib_form import PREDICTION_SCHEMA, from_qlib, to_qlib
from hikyuu_qlib.modelling.service import TrainSpec, train_and_register
from hikyuu_qlib.registry import LocalArtifactStore, ModelRegistry
from hikyuu_qlib.stores.qlib import QlibStore

SEGMENTS = Segments.parse("2016-06-01:2017-09-30", None, "2017-10-01:2017-12-31")  # no early stopping
DATES = DateRange.of("2018-01-01", "2018-02-28")


class CountingArtifacts(LocalArtifactStore):
    """The real artifact store, counting how often a booster is loaded."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.loads = 0

    def get_bytes(self, ref: ArtifactRef) -> bytes:
        data = super().get_bytes(ref)
        if data.startswith(b"tree\n"):  # a LightGBM text model (not the processors' JSON)
            self.loads += 1
        return data


@pytest.fixture(scope="module")
def store(qlib_dir: Path) -> QlibStore:
    return QlibStore.open(qlib_dir)


@pytest.fixture(scope="module")
def universe(store: QlibStore) -> Universe:
    full = Universe.from_store(store, "csi300")
    codes = full.members_between(DateRange.of("2016-06-01", "2018-02-28"))[:40]
    return Universe("csi300-first40", full.membership.filter(pl.col("code").is_in(codes)))


@pytest.fixture(scope="module")
def trained(store: QlibStore, universe: Universe, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("prediction")
    registry = ModelRegistry(f"sqlite:///{root / 'registry.db'}").open()
    artifacts = CountingArtifacts(root / "artifacts")
    outcome = train_and_register(
        TrainSpec(
            "pred", SEGMENTS, num_threads=2, num_boost_round=10, params={"lambda_l1": 1.0, "lambda_l2": 1.0}
        ),
        store=store,
        universe=universe,
        registry=registry,
        artifacts=artifacts,
    )
    yield registry, artifacts, outcome
    registry.close()


def test_predictions_frame_schema_and_rows(trained, store, universe) -> None:  # type: ignore[no-untyped-def]
    registry, artifacts, outcome = trained
    frame = Predictor(registry, artifacts).predict(outcome.model.id, store, universe, DATES)
    assert frame.schema == pl.Schema(PREDICTION_SCHEMA)
    keys = frame.select("datetime", "code")
    assert keys.equals(keys.sort("datetime", "code")) and not keys.is_duplicated().any()
    assert frame["datetime"].min() >= DATES.start and frame["datetime"].max() <= DATES.end
    members = universe.mask(frame.select("code", "datetime"))
    assert members.all()  # only each date's members
    assert frame["score"].is_finite().all() and frame["score"].n_unique() > 100


def test_parquet_csv_and_qlib_form_round_trip(trained, store, universe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    registry, artifacts, outcome = trained
    frame = Predictor(registry, artifacts).predict(outcome.model.id, store, universe, DATES)
    assert write_predictions(frame, str(tmp_path / "p.parquet")) == "parquet"
    assert pl.read_parquet(tmp_path / "p.parquet").equals(frame)
    assert write_predictions(frame, str(tmp_path / "p.csv")) == "csv"
    back = pl.read_csv(tmp_path / "p.csv", try_parse_dates=True)
    np.testing.assert_allclose(back["score"].to_numpy(), frame["score"].to_numpy())
    series = to_qlib(frame)
    assert list(series.index.names) == ["datetime", "instrument"] and series.name == "score"
    assert series.index.is_monotonic_increasing and str(series.index.levels[0].dtype) == "datetime64[ns]"
    assert from_qlib(series).equals(frame)
    table = to_qlib(frame, ["score"])
    assert from_qlib(table).equals(frame)


def test_lru_serves_repeats_and_reloads_after_the_record_changes(trained, store, universe) -> None:  # type: ignore[no-untyped-def]
    registry, artifacts, outcome = trained
    predictor = Predictor(registry, artifacts, capacity=2)
    before = artifacts.loads
    first = predictor.load(outcome.model.id)
    assert artifacts.loads == before + 1
    a = predictor.predict(outcome.model.id, store, universe, DATES)
    b = predictor.predict(outcome.model.id, store, universe, DATES)
    assert predictor.load(outcome.model.id) is first and artifacts.loads == before + 1
    assert predictor.hits == 3 and predictor.misses == 1 and a.equals(b)
    # the record changes (a new artifact: the model retrained to 5 rounds) -> reloaded, new scores
    short = outcome.result.booster.model_to_string(num_iteration=5)
    ref = artifacts.put_bytes(short.encode())
    registry.save(registry.get(outcome.model.id).with_artifact(ref))
    c = predictor.predict(outcome.model.id, store, universe, DATES)
    assert artifacts.loads == before + 2 and predictor.load(outcome.model.id) is not first
    assert not c["score"].equals(a["score"])
    assert len(predictor.cached()) == 1  # the stale entry is gone
    # any update of the record (tags) also invalidates
    registry.save(registry.get(outcome.model.id).with_tags({"note": "touched"}))
    predictor.load(outcome.model.id)
    assert artifacts.loads == before + 3


def test_capacity_evicts_least_recently_used(trained) -> None:  # type: ignore[no-untyped-def]
    registry, artifacts, outcome = trained
    other = registry.save(registry.get(outcome.model.id).with_tags({"copy": "1"}))
    clone = registry.save(
        other.__class__.new(
            "pred-clone",
            other.model_type,
            artifacts=other.artifacts,
            tags=other.tags,
            feature_set=other.feature_set,
        )
    )
    predictor = Predictor(registry, artifacts, capacity=1)
    predictor.load(outcome.model.id)
    predictor.load(clone.id)
    assert [k[0] for k in predictor.cached()] == [clone.id]


def _alpha158_on(source: str, universe_name: str | None) -> pl.DataFrame:
    store = open_store(source)
    bars = BarsFeatureSource(store)
    if universe_name:
        members = store.members(universe_name)
        codes = members["code"].unique().sort().head(15).to_list()
        universe = Universe(universe_name, members.filter(pl.col("code").is_in(codes)))
    else:
        universe = Universe.from_codes(store.stocks()["code"].head(15).to_list())
    cal = bars.calendar()
    dates = DateRange(cal[len(cal) - 200], cal[len(cal) - 100])
    return compute_features(bars, universe, dates)


def test_alpha158_on_synthetic_bars() -> None:
    frame = _alpha158_on("synthetic:3?stocks=30&years=3", "csi300")
    assert frame.height > 500 and frame.columns[2:160] == alpha158_names()
    finite = frame.select(pl.col(alpha158_names()).is_finite().mean()).row(0)
    assert min(finite) > 0.9  # VWAP0 included: synthetic bars have amounts


def test_alpha158_on_hikyuu_bars(hikyuu_dir: Path) -> None:
    frame = _alpha158_on(f"hikyuu:{hikyuu_dir}", None)
    assert frame.height > 0 and frame.columns[2:160] == alpha158_names()
    assert frame.select(pl.col("KMID", "ROC5", "VWAP0").is_finite().mean()).row(0) > (0.9, 0.9, 0.5)


def test_bars_source_on_qlib_store_matches_qlib_fields(store: QlibStore) -> None:
    codes = ["SH600000", "SH600519", "SZ000001"]
    dates = DateRange.of("2015-01-01", "2016-12-31")
    fields = ["close", "open", "volume", "factor"]
    ours = BarsFeatureSource(store).features(codes, [f"${f}" for f in fields], dates)
    theirs = store.features(codes, fields, dates)
    joined = theirs.join(ours, on=["code", "datetime"], how="left", suffix="_b").filter(
        pl.col("close").is_not_nan()
    )
    assert joined.height > 1000
    # bars hold traded shares and the bars source divides them by the factor (Qlib's convention); this
    # store keeps $volume as traded (see stores/qlib/volume.py), so its $volume is the bars' × factor
    convention = store.volume_convention()
    assert convention == "traded"
    expected = {f: joined[f].to_numpy() for f in fields}
    expected["volume"] = (joined["volume"] / joined["factor"]).to_numpy()
    for f in fields:  # $close = (close / factor) * factor
        np.testing.assert_allclose(joined[f"{f}_b"].to_numpy(), expected[f], rtol=2e-6)
    qlib_features = compute_features(store, Universe.from_codes(codes), dates, label=False)
    bars_features = compute_features(BarsFeatureSource(store), Universe.from_codes(codes), dates, label=False)
    assert bars_features.select("code", "datetime").equals(qlib_features.select("code", "datetime"))
    # price features only: the volume features differ by the two conventions wherever the factor moves
    for name in ("KMID", "ROC20", "STD60", "KLEN", "MA10"):
        np.testing.assert_allclose(
            bars_features[name].to_numpy(), qlib_features[name].to_numpy(), rtol=1e-4, atol=1e-6
        )
