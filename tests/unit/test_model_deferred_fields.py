"""A record read back from rows whose JSON is text (sqlite3, asyncpg) decodes its JSON fields on first read:
the record reads, compares, copies and prints as one decoded at once (no storage here: rows as the drivers
give them)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pickle
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from hikyuu_qlib.domain import errors
from hikyuu_qlib.domain.model import DEFERRABLE, STAMPS, ArtifactRef, Deferred, Model, field_slot
from hikyuu_qlib.registry.codec import from_row, to_values, with_version
from hikyuu_qlib.registry.driver import JSON_COLUMNS, RowCodec
from hikyuu_qlib.registry.tables import COLUMNS

SHA = "ab" * 32


def saved(**overrides: Any) -> Model:
    values: dict[str, Any] = {
        "hyperparameters": {"num_leaves": 31, "learning_rate": 0.05, "nested": {"a": [1, 2.5, None]}},
        "feature_set": "alpha158",
        "universe": "csi300",
        "segments": {"train": ["2010-01-01", "2014-12-31"], "test": ["2016-01-01", "2017-12-31"]},
        "label": "Ref($close, -2) / Ref($close, -1) - 1",
        "metrics": {"ic": 0.041, "rank_ic": 0.052},
        "tags": {"owner": "tests"},
        "artifacts": {"model": ArtifactRef("file:///m.txt", SHA, 12)},
    }
    values.update(overrides)
    return dataclasses.replace(Model.new("deferred", "lightgbm", **values), version=3)


def text_row(model: Model) -> tuple[Any, ...]:
    """The row as sqlite3 and asyncpg give it: JSON as text."""
    params = RowCodec.params(model)
    return tuple(model.version if c == "version" else params[c] for c in COLUMNS)


def raw(model: Model, name: str) -> Any:
    return field_slot(name).__get__(model)


def test_a_record_from_a_text_row_is_the_saved_record() -> None:
    model = saved()
    read = RowCodec("sqlite").model(text_row(model))
    assert all(type(raw(read, name)) is Deferred for name in DEFERRABLE)  # nothing decoded yet
    assert read == model and model == read
    assert repr(read) == repr(model) and read.to_json() == model.to_json()
    assert read.artifact == model.artifact and read.segments == model.segments


def test_the_first_read_decodes_every_deferred_field_once() -> None:
    model = saved()
    codec = RowCodec("sqlite")
    loads: list[Sequence[Any]] = []

    def counted(row: Sequence[Any]) -> tuple[Any, ...]:
        loads.append(row)
        return codec.json_fields(row)

    read = from_row(text_row(model), counted)
    assert read.name == model.name and read.created_at == model.created_at and not loads
    metrics = read.metrics
    assert len(loads) == 1 and metrics == model.metrics
    assert not any(type(raw(read, name)) is Deferred for name in DEFERRABLE)
    for name in DEFERRABLE:
        assert getattr(read, name) is getattr(read, name) == getattr(model, name)
    assert len(loads) == 1


@pytest.mark.parametrize("name", DEFERRABLE)
def test_any_deferred_field_read_first_gives_its_own_value(name: str) -> None:
    model = saved()
    read = RowCodec("sqlite").model(text_row(model))
    assert getattr(read, name) == getattr(model, name)


def test_a_deferred_record_copies_compares_and_pickles_as_a_decoded_one() -> None:
    model = saved()
    codec = RowCodec("sqlite")
    moved = codec.model(text_row(model)).transition("training")
    assert moved.status.value == "training" and moved.hyperparameters == model.hyperparameters
    again = with_version(codec.model(text_row(model)), 4)
    assert type(raw(again, "tags")) is Deferred  # a new version keeps the fields as they were
    assert again == dataclasses.replace(model, version=4)
    assert pickle.loads(pickle.dumps(codec.model(text_row(model)))) == model
    assert codec.model(text_row(model)) != saved(metrics={"ic": 0.5})
    with pytest.raises(TypeError):  # unhashable, as every record with dict fields
        hash(codec.model(text_row(model)))


def test_deferred_records_stay_frozen_and_refuse_deferred_values() -> None:
    read = RowCodec("sqlite").model(text_row(saved()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.hyperparameters = {}  # type: ignore[misc]
    with pytest.raises(errors.InvalidInputError, match="deferred"):
        Model.new("x", "lightgbm", hyperparameters=Deferred())  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidInputError, match="deferred"):
        dataclasses.replace(read, metrics=Deferred())  # type: ignore[arg-type]


def test_empty_json_fields_and_decoded_rows() -> None:
    bare = dataclasses.replace(Model.new("empty", "linear"), version=1)
    codec = RowCodec("sqlite")
    assert codec.model(text_row(bare)) == bare and not codec.model(text_row(bare)).segments
    model = saved()
    # psycopg hands JSON over decoded: nothing is deferred
    decoded = tuple(
        orjson.loads(v) if c in JSON_COLUMNS else v for c, v in zip(COLUMNS, text_row(model), strict=True)
    )
    read = RowCodec("postgresql").model(decoded)
    assert not any(type(raw(read, name)) is Deferred for name in DEFERRABLE)
    assert read == model


def test_timestamps_stay_stored_micros_until_each_is_read() -> None:
    first = saved()
    model = dataclasses.replace(first, updated_at=first.created_at + dt.timedelta(microseconds=1))
    row = text_row(model)
    read = RowCodec("sqlite").model(row)
    assert [raw(read, name) for name in STAMPS] == [row[COLUMNS.index(name)] for name in STAMPS]
    assert to_values(read) == to_values(model)  # saved back as stored, nothing decoded
    assert type(raw(read, "updated_at")) is int
    assert read.created_at == model.created_at and read.created_at.tzinfo is dt.UTC
    assert type(raw(read, "created_at")) is dt.datetime and type(raw(read, "updated_at")) is int
    assert read.created_at is read.created_at  # decoded once, kept
    assert read == model and repr(read) == repr(model)
    assert pickle.loads(pickle.dumps(RowCodec("sqlite").model(row))) == model
    assert with_version(RowCodec("sqlite").model(row), 4) == dataclasses.replace(model, version=4)


def test_timestamps_refuse_integers_from_callers() -> None:
    read = RowCodec("sqlite").model(text_row(saved()))
    with pytest.raises(errors.InvalidInputError, match="invalid created_at 5: expected a datetime"):
        Model(id=read.id, name="x", model_type=read.model_type, created_at=5)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidInputError, match="invalid updated_at 7: expected a datetime"):
        dataclasses.replace(read, updated_at=7)  # type: ignore[arg-type]
