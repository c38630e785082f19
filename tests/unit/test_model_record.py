"""The model record: validation, lifecycle and serialisation, without any storage."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from ulid import ULID

from hikyuu_qlib.domain import DateRange, errors
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
    with pytest.raises(errors.UnknownModelTypeError, match="'svm'"):
        make(model_type="svm")
    with pytest.raises(errors.UnknownModelStatusError, match="'done'"):
        make(status="done")
    assert issubclass(errors.UnknownModelTypeError, errors.InvalidInputError)


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
                with pytest.raises(
                    errors.IllegalTransitionError, match=f"from {source.value} to {target.value}"
                ):
                    record.transition(target)


def test_transition_updates_time_not_identity() -> None:
    model = make()
    later = model.created_at + dt.timedelta(seconds=3)
    moved = model.transition("training", now=later)
    assert moved.id == model.id and moved.created_at == model.created_at and moved.updated_at == later
    assert model.status is ModelStatus.CREATED  # immutable


@pytest.mark.parametrize("bad", [{"f": object()}, {"x": float("nan")}, {"x": {1, 2}}, ["not", "a", "dict"]])
def test_hyperparameters_must_be_json(bad: object) -> None:
    with pytest.raises(errors.InvalidHyperparametersError):
        make(hyperparameters=bad)


@pytest.mark.parametrize(
    "bad",
    [{"ic": math.nan}, {"ic": math.inf}, {"backtest": {"sharpe": -math.inf}}, {"curve": [0.1, math.nan]}],
)
def test_metrics_reject_nan_and_infinity(bad: dict[str, object]) -> None:
    with pytest.raises(errors.InvalidMetricsError, match="finite"):
        make(metrics=bad)
    with pytest.raises(errors.InvalidMetricsError):
        make().with_metrics(bad)


def test_config_hash_depends_on_training_config_only() -> None:
    a = make(hyperparameters={"lr": 0.1}, feature_set="alpha158")
    b = make(hyperparameters={"lr": 0.1}, feature_set="alpha158", tags={"x": "y"}, metrics={"ic": 1.0})
    c = make(hyperparameters={"lr": 0.2}, feature_set="alpha158")
    assert a.config_hash == b.config_hash != c.config_hash
    assert len(a.config_hash) == 64


def test_segments_artifact_and_tags_are_checked() -> None:
    with pytest.raises(errors.InvalidInputError, match="inverted train"):
        make(segments={"train": ["2015-01-01", "2010-01-01"]})
    with pytest.raises(errors.InvalidInputError, match="unknown segment"):
        make(segments={"holdout": ["2015-01-01", "2016-01-01"]})
    with pytest.raises(errors.InvalidInputError, match="sha256"):
        ArtifactRef("file:///x", "abc", 1)
    with pytest.raises(errors.InvalidInputError, match="tag"):
        make(tags={"k": 1})
    with pytest.raises(errors.InvalidInputError, match="model id"):
        Model(id="not-a-ulid", name="x", model_type=ModelType.MLP)
    with pytest.raises(errors.InvalidInputError, match="name"):
        make().__class__.new("  ", "mlp")


def test_to_json_round_trips_segments() -> None:
    model = make(segments=Segments(train=DateRange.of(dt.date(2010, 1, 1), dt.date(2014, 12, 31))))
    doc = model.to_json()
    assert doc["segments"] == {"train": ["2010-01-01", "2014-12-31"]}
    assert Segments.from_json(doc["segments"]) == model.segments
    assert doc["model_type"] == "lightgbm" and doc["status"] == "created"


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"name": "n" * 201}, errors.InvalidInputError, "201 characters"),
        ({"feature_set": "f" * 201}, errors.InvalidInputError, "feature_set is 201 characters"),
        ({"universe": "u" * 201}, errors.InvalidInputError, "universe is 201 characters"),
        ({"name": "a\x00b"}, errors.InvalidInputError, "NUL"),
        ({"label": "Ref($close, -1)\x00"}, errors.InvalidInputError, "NUL"),
        ({"feature_set": None}, errors.InvalidInputError, "feature_set"),
        ({"tags": {"owner": "x\x00"}}, errors.InvalidInputError, "NUL"),
        ({"tags": {"k\x00": "v"}}, errors.InvalidInputError, "NUL"),
        ({"name": "half \ud800 pair"}, errors.InvalidInputError, "surrogate"),
        ({"hyperparameters": {"objective": "a\x00b"}}, errors.InvalidHyperparametersError, "NUL"),
        ({"hyperparameters": {"k\x00": 1}}, errors.InvalidHyperparametersError, "NUL"),
        ({"hyperparameters": {"seed": 2**64}}, errors.InvalidHyperparametersError, "64 bits"),
        ({"hyperparameters": {"seed": -(2**63) - 1}}, errors.InvalidHyperparametersError, "64 bits"),
        ({"hyperparameters": {"deep": _nested(254)}}, errors.InvalidHyperparametersError, "254 levels"),
        ({"hyperparameters": {"x": float("inf")}}, errors.InvalidHyperparametersError, "finite"),
        ({"hyperparameters": {7: 1}}, errors.InvalidHyperparametersError, "keys are strings"),
        ({"hyperparameters": {"x": 1, None: 2}}, errors.InvalidHyperparametersError, "keys are strings"),
        ({"metrics": {"count": 2**80}}, errors.InvalidMetricsError, "64 bits"),
        ({"metrics": {"curve": [[{"x": _nested(260)}]]}}, errors.InvalidMetricsError, "254 levels"),
        ({"metrics": {"note": "a\x00"}}, errors.InvalidMetricsError, "NUL"),
    ],
)
def test_what_no_backend_can_store_is_refused_at_construction(
    changes: dict[str, object], error: type, words: str
) -> None:
    name = str(changes.pop("name", "alpha"))
    with pytest.raises(error, match=words):
        Model.new(name, "lightgbm", **changes)  # type: ignore[arg-type]


def test_the_limits_themselves_are_accepted_and_encodable() -> None:
    import orjson

    edge = Model.new(
        "名" * 200,
        "lightgbm",
        feature_set="f" * 200,
        universe="u" * 200,
        label="é\u2028",
        hyperparameters={"max": 2**64 - 1, "min": -(2**63), "deep": _nested(253)},
        metrics={"ic": 0.05},
        tags={"ключ": "値"},
    )
    assert len(edge.name) == 200
    orjson.dumps(edge.hyperparameters, option=orjson.OPT_NON_STR_KEYS)  # what the registry's codec sends
    with pytest.raises(orjson.JSONEncodeError):  # one level more is beyond the codec: the limit is its own
        orjson.dumps({"deep": _nested(254)})
    with pytest.raises(errors.InvalidMetricsError):
        edge.with_metrics({"n": 2**64})
