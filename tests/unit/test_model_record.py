"""The model record: validation, lifecycle and serialisation, without any storage."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from ulid import ULID

from hikyuu_qlib.domain import errors as E
from hikyuu_qlib.domain.model import TRANSITIONS, ArtifactRef, Model, ModelStatus, ModelType, Segments


def make(**kw: object) -> Model:
    return Model.new("alpha", kw.pop("model_type", "lightgbm"), **kw)  # type: ignore[arg-type]


def test_new_record_has_sortable_ulid_and_times() -> None:
    a = make()
    b = make(now=a.created_at + dt.timedelta(milliseconds=5))
    assert len(a.id) == 26 and ULID.from_str(a.id)
    assert a.id < b.id
    assert a.version is None and a.status is ModelStatus.CREATED
    assert a.created_at == a.updated_at and a.created_at.tzinfo is not None


def test_types_and_statuses_parse_and_reject_unknown() -> None:
    assert ModelType.parse("LGB") is ModelType.LIGHTGBM
    assert ModelType.parse("double-ensemble") is ModelType.DOUBLE_ENSEMBLE
    with pytest.raises(E.UnknownModelTypeError, match="'svm'"):
        make(model_type="svm")
    with pytest.raises(E.UnknownModelStatusError, match="'done'"):
        make(status="done")
    assert issubclass(E.UnknownModelTypeError, E.InvalidInputError)


def test_lifecycle_allows_only_listed_transitions() -> None:
    path = [ModelStatus.TRAINING, ModelStatus.TRAINED, ModelStatus.DEPLOYED, ModelStatus.ARCHIVED]
    model = make()
    for status in path:
        model = model.transition(status)
        assert model.status is status
    assert make().transition("training").transition("failed").status is ModelStatus.FAILED
    for source in ModelStatus:
        for target in ModelStatus:
            record = make(status=source)
            if target in TRANSITIONS[source]:
                assert record.transition(target).status is target
            else:
                with pytest.raises(E.IllegalTransitionError, match=f"from {source.value} to {target.value}"):
                    record.transition(target)


def test_transition_updates_time_not_identity() -> None:
    model = make()
    later = model.created_at + dt.timedelta(seconds=3)
    moved = model.transition("training", now=later)
    assert moved.id == model.id and moved.created_at == model.created_at and moved.updated_at == later
    assert model.status is ModelStatus.CREATED  # immutable


@pytest.mark.parametrize("bad", [{"f": object()}, {"x": float("nan")}, {"x": {1, 2}}, ["not", "a", "dict"]])
def test_hyperparameters_must_be_json(bad: object) -> None:
    with pytest.raises(E.InvalidHyperparametersError):
        make(hyperparameters=bad)


@pytest.mark.parametrize("bad", [{"ic": math.nan}, {"ic": math.inf}, {"backtest": {"sharpe": -math.inf}},
                                 {"curve": [0.1, math.nan]}])
def test_metrics_reject_nan_and_infinity(bad: dict[str, object]) -> None:
    with pytest.raises(E.InvalidMetricsError, match="finite"):
        make(metrics=bad)
    with pytest.raises(E.InvalidMetricsError):
        make().with_metrics(bad)


def test_config_hash_depends_on_training_config_only() -> None:
    a = make(hyperparameters={"lr": 0.1}, feature_set="alpha158")
    b = make(hyperparameters={"lr": 0.1}, feature_set="alpha158", tags={"x": "y"}, metrics={"ic": 1.0})
    c = make(hyperparameters={"lr": 0.2}, feature_set="alpha158")
    assert a.config_hash == b.config_hash != c.config_hash
    assert len(a.config_hash) == 64


def test_segments_artifact_and_tags_are_checked() -> None:
    with pytest.raises(E.InvalidInputError, match="inverted train"):
        make(segments={"train": ["2015-01-01", "2010-01-01"]})
    with pytest.raises(E.InvalidInputError, match="unknown segment"):
        make(segments={"holdout": ["2015-01-01", "2016-01-01"]})
    with pytest.raises(E.InvalidInputError, match="sha256"):
        ArtifactRef("file:///x", "abc", 1)
    with pytest.raises(E.InvalidInputError, match="tag"):
        make(tags={"k": 1})
    with pytest.raises(E.InvalidInputError, match="model id"):
        Model(id="not-a-ulid", name="x", model_type=ModelType.MLP)
    with pytest.raises(E.InvalidInputError, match="name"):
        make().__class__.new("  ", "mlp")


def test_to_json_round_trips_segments() -> None:
    model = make(segments=Segments(train=(dt.date(2010, 1, 1), dt.date(2014, 12, 31))))
    doc = model.to_json()
    assert doc["segments"] == {"train": ["2010-01-01", "2014-12-31"]}
    assert Segments.from_json(doc["segments"]) == model.segments
    assert doc["model_type"] == "lightgbm" and doc["status"] == "created"
