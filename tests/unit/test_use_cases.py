"""The training and prediction use cases against in-memory fakes of their two ports (model records, model
files), over a small synthetic market: what they record, what they store, and what they leave behind when
they fail. The fakes implement the same ports as the registry and the artifact store (checked below)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
from tests.cache_support import disk_cache

from hikyuu_qlib.cache.tiered import TieredCache
from hikyuu_qlib.domain import DateRange, InvalidInputError, Segments
from hikyuu_qlib.domain.errors import ArtifactIntegrityError, ArtifactNotFoundError, ModelNotFoundError
from hikyuu_qlib.domain.model import ArtifactRef, Model, ModelStatus
from hikyuu_qlib.domain.queries import ModelFilter, ModelOrder, Page
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling import service, trainer
from hikyuu_qlib.modelling.bars_source import BarsFeatureSource
from hikyuu_qlib.modelling.dataset import matrix
from hikyuu_qlib.modelling.predictor import Predictor
from hikyuu_qlib.modelling.service import DegenerateModelError, TrainSpec, train_and_register
from hikyuu_qlib.ports import ModelFiles, ModelRecords
from hikyuu_qlib.registry import LocalArtifactStore, ModelRegistry
from hikyuu_qlib.stores.source import SyntheticParams
from hikyuu_qlib.stores.synthetic import SyntheticStore

# ------------------------------------------------------------------------------------------------- fakes


class FakeModelRecords:
    """Model records in a dict: versions per name and the lifecycle, as the registry keeps them."""

    def __init__(self) -> None:
        self._models: dict[str, Model] = {}
        self.statuses: dict[str, list[ModelStatus]] = {}  # every status each model was stored with

    def save(self, model: Model) -> Model:
        stored = self._models.get(model.id)
        if stored is not None:
            version = stored.version
        else:
            version = 1 + max(
                (m.version or 0 for m in self._models.values() if m.name == model.name), default=0
            )
        saved = dataclasses.replace(model, version=version)
        self._store(saved)
        return saved

    def get(self, model_id: str) -> Model:
        try:
            return self._models[model_id]
        except KeyError:
            raise ModelNotFoundError(f"no model with id {model_id!r}") from None

    def transition(self, model_id: str, target: ModelStatus | str) -> Model:
        changed = self.get(model_id).transition(target)
        self._store(changed)
        return changed

    def find(
        self,
        flt: ModelFilter | None = None,
        *,
        order: ModelOrder | str = ModelOrder.CREATED,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Model]:
        flt = flt or ModelFilter()
        found = [
            m
            for m in sorted(self._models.values(), key=lambda m: (m.created_at, m.id))
            if (flt.status is None or m.status is flt.status)
            and (flt.name is None or m.name == flt.name)
            and all(m.tags.get(k) == v for k, v in flt.tags.items())
        ]
        if ModelOrder.parse(order) is ModelOrder.CREATED_DESC:
            found.reverse()
        return Page(found[:limit], None)

    def resolve(self, prefix: str) -> str:
        ids = [i for i in self._models if i.startswith(prefix.upper())]
        if len(ids) != 1:
            raise ModelNotFoundError(f"no single model with id prefix {prefix!r}")
        return ids[0]

    def _store(self, model: Model) -> None:
        self._models[model.id] = model
        self.statuses.setdefault(model.id, []).append(model.status)


class FakeModelFiles:
    """Model files in a dict, content-addressed and checked on read, as the artifact store keeps them."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.reads = 0

    def put_bytes(self, data: bytes) -> ArtifactRef:
        sha = hashlib.sha256(data).hexdigest()
        self.files[sha] = bytes(data)
        return ArtifactRef(f"memory:{sha}", sha, len(data))

    def get_bytes(self, ref: ArtifactRef) -> bytes:
        self.reads += 1
        data = self.files.get(ref.sha256)
        if data is None:
            raise ArtifactNotFoundError(f"no artifact {ref.uri}")
        if hashlib.sha256(data).hexdigest() != ref.sha256 or len(data) != ref.size:
            raise ArtifactIntegrityError(f"artifact {ref.uri} does not match its record")
        return data

    def save_lightgbm(self, booster: Any) -> ArtifactRef:
        return self.put_bytes(booster.model_to_string().encode())

    def load_lightgbm(self, ref: ArtifactRef) -> Any:
        return lgb.Booster(model_str=self.get_bytes(ref).decode())


class FilesThatFail(FakeModelFiles):
    def put_bytes(self, data: bytes) -> ArtifactRef:
        raise OSError(28, "No space left on device")


# ------------------------------------------------------------------------------------------------- setup

# 40 synthetic stocks over two years; no valid segment, so every round counts (no early stopping)
SEGMENTS = Segments.parse("2019-04-01:2020-06-30", None, "2020-07-01:2020-12-31")
TEST = SEGMENTS["test"]
# Qlib's regularisation leaves trees of 40 stocks without a split (see hq demo); a lighter one learns
SMALL = {"lambda_l1": 1.0, "lambda_l2": 1.0, "num_leaves": 15, "min_data_in_leaf": 50, "learning_rate": 0.05}


@pytest.fixture(scope="module")
def market(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BarsFeatureSource, Universe, TieredCache]]:
    store = SyntheticStore(SyntheticParams(seed=5, stocks=40, years=2, start=dt.date(2019, 1, 2)))
    source = BarsFeatureSource(store)
    universe = Universe.from_store(source, "all", SEGMENTS.span())
    yield source, universe, disk_cache(tmp_path_factory.mktemp("features"))
    store.close()


def _spec(segments: Segments = SEGMENTS, **changes: Any) -> TrainSpec:
    options: dict[str, Any] = {"num_threads": 1, "num_boost_round": 10, "params": SMALL, **changes}
    return TrainSpec("synthetic-lgb", segments, **options)


def _train(
    market: tuple[BarsFeatureSource, Universe, TieredCache],
    records: ModelRecords,
    files: ModelFiles,
    spec: TrainSpec | None = None,
) -> service.TrainOutcome:
    source, universe, cache = market
    return train_and_register(
        spec or _spec(), store=source, universe=universe, registry=records, artifacts=files, cache=cache
    )


# ------------------------------------------------------------------------------------------------- tests


def test_the_fakes_and_the_adapters_implement_the_same_ports(tmp_path: Path) -> None:
    assert isinstance(FakeModelRecords(), ModelRecords)
    assert isinstance(ModelRegistry(f"sqlite:///{tmp_path / 'r.db'}"), ModelRecords)  # not opened: no file
    assert isinstance(FakeModelFiles(), ModelFiles)
    assert isinstance(LocalArtifactStore(tmp_path / "artifacts"), ModelFiles)
    assert not (tmp_path / "r.db").exists()


def test_training_records_the_lifecycle_and_stores_the_model_and_processors(market) -> None:  # type: ignore[no-untyped-def]
    records, files = FakeModelRecords(), FakeModelFiles()
    outcome = _train(market, records, files)

    model = records.get(outcome.model.id)
    assert model == outcome.model
    assert records.statuses[model.id] == [ModelStatus.CREATED, ModelStatus.TRAINING, ModelStatus.TRAINED]
    assert model.version == 1 and model.name == "synthetic-lgb" and model.universe == "all"
    assert model.segments == SEGMENTS
    assert model.metrics["rounds"] == model.metrics["best_iteration"] == 10
    assert model.metrics["ic"] == model.metrics["test"]["ic"] != 0
    assert model.tags["source"] == market[0].store.source and model.tags["data_version"]
    # the files are in the files port, under the roles the record names
    assert set(model.artifacts) == {"model", "processors", "importance"}
    assert model.artifact == model.artifacts["model"]
    assert set(files.files) == {ref.sha256 for ref in model.artifacts.values()}
    booster = files.load_lightgbm(model.artifacts["model"])
    assert booster.model_to_string() == outcome.result.booster.model_to_string()
    assert files.get_bytes(model.artifacts["processors"]) == outcome.data.state_bytes()

    again = _train(market, records, files)  # the same name trains a new version; the same files
    assert again.model.version == 2 and again.model.id != model.id
    assert again.model.artifacts == model.artifacts
    assert [m.id for m in records.find(ModelFilter(status="trained")).items] == [model.id, again.model.id]


def test_prediction_scores_with_the_registered_files_and_loads_them_once(market) -> None:  # type: ignore[no-untyped-def]
    source, universe, cache = market
    records, files = FakeModelRecords(), FakeModelFiles()
    outcome = _train(market, records, files)
    predictor = Predictor(records, files)

    scores = service.predict(
        outcome.model.id, predictor=predictor, store=source, universe=universe, dates=TEST, cache=cache
    )
    assert scores.columns == ["datetime", "code", "score"] and scores.height > 0
    assert scores["datetime"].min() >= TEST.start and scores["datetime"].max() <= TEST.end
    # the scores are the trained booster's on the test rows of the training run
    rows = outcome.data.view("test", "infer")
    expected = rows.select("datetime", "code").with_columns(
        pl.Series("expected", trainer.predict(outcome.result.booster, matrix(rows, outcome.data.features), 1))
    )
    joined = scores.join(expected, on=["datetime", "code"], how="inner")
    assert joined.height == rows.height == scores.height
    np.testing.assert_allclose(joined["score"].to_numpy(), joined["expected"].to_numpy(), rtol=1e-6)

    reads = files.reads
    again = service.predict(
        outcome.model.id, predictor=predictor, store=source, universe=universe, dates=TEST, cache=cache
    )
    assert again.equals(scores) and files.reads == reads and predictor.hits == 1  # from the LRU
    records.save(records.get(outcome.model.id).with_tags({"note": "changed"}))  # a changed record reloads
    service.predict(
        outcome.model.id, predictor=predictor, store=source, universe=universe, dates=TEST, cache=cache
    )
    assert files.reads == reads + 2  # the booster and the processors


def test_a_spec_that_cannot_train_creates_no_record(market) -> None:  # type: ignore[no-untyped-def]
    records, files = FakeModelRecords(), FakeModelFiles()
    spec = _spec(Segments.parse("2010-01-01:2010-06-30"))  # before the market's first day
    with pytest.raises(InvalidInputError, match=r"train segment .* has no trading day"):
        _train(market, records, files, spec)
    with pytest.raises(InvalidInputError, match="num_boost_round"):
        _train(market, records, files, _spec(num_boost_round=0))
    assert records.find().items == [] and files.files == {}


def test_a_failure_while_storing_the_files_leaves_the_record_failed(market) -> None:  # type: ignore[no-untyped-def]
    records, files = FakeModelRecords(), FilesThatFail()
    with pytest.raises(OSError, match="No space left"):
        _train(market, records, files)
    (model,) = records.find().items
    assert model.status is ModelStatus.FAILED and model.artifacts == {}
    assert records.statuses[model.id] == [ModelStatus.CREATED, ModelStatus.TRAINING, ModelStatus.FAILED]


def test_a_degenerate_model_is_recorded_failed_with_its_reason_and_no_files(market) -> None:  # type: ignore[no-untyped-def]
    records, files = FakeModelRecords(), FakeModelFiles()
    with pytest.raises(DegenerateModelError, match="one boosting round"):
        _train(market, records, files, _spec(num_boost_round=1))
    (model,) = records.find().items
    assert model.status is ModelStatus.FAILED and "one boosting round" in model.tags["failure"]
    assert model.artifacts == {} and files.files == {}
    assert model.metrics["best_iteration"] == 1
    with pytest.raises(InvalidInputError, match="has no artifact"):
        Predictor(records, files).load(model.id)


def test_evaluation_reads_the_record_and_reports_the_ic_over_the_dates(market) -> None:  # type: ignore[no-untyped-def]
    source, universe, cache = market
    records, files = FakeModelRecords(), FakeModelFiles()
    outcome = _train(market, records, files)
    report = service.evaluate(
        outcome.model.id,
        predictor=Predictor(records, files),
        store=source,
        universe=universe,
        dates=TEST,
        cache=cache,
    )
    assert report.model == outcome.model and report.dates == TEST and not report.errors
    assert report.summary["ic"] == pytest.approx(outcome.metrics["test"]["ic"], rel=1e-6)
    assert report.yearly["year"].to_list() == [2020]
    assert report.daily["datetime"].min() >= TEST.start
    assert DateRange(report.daily["datetime"].min(), report.daily["datetime"].max()).contains(
        dt.datetime(2020, 9, 1)
    )
