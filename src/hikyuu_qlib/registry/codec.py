"""Model record ⇄ table row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from hikyuu_qlib.domain.model import STAMPS, ArtifactRef, Deferred, Model, ModelStatus, ModelType, field_slot
from hikyuu_qlib.domain.segments import Segments
from hikyuu_qlib.registry.tables import COLUMNS

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TYPES = {m.value: m for m in ModelType}
_STATUSES = {m.value: m for m in ModelStatus}


def to_micros(when: dt.datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def stored_micros(when: Any) -> int:
    """A timestamp slot's value as stored: a read-back record may still hold the stored microseconds."""
    return when if type(when) is int else to_micros(when)


# The columns a save binds, in table order (``version`` is left to the database).
UPSERT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c != "version")


def to_values(model: Model) -> tuple[Any, ...]:
    """Bind values of one model in ``UPSERT_COLUMNS`` order (JSON fields as Python objects)."""
    artifacts = model.artifacts
    return (
        model.id,
        model.name,
        model.model_type.value,
        model.status.value,
        model.hyperparameters,
        model.feature_set,
        model.universe,
        model.segments.to_json(),
        model.label,
        model.metrics,
        model.tags,
        model.config_hash,
        stored_micros(_get_created(model)),  # the slots: a record read back keeps its stored micros
        stored_micros(_get_updated(model)),
        {role: ref.to_json() for role, ref in artifacts.items()} if artifacts else {},
    )


def stored_artifacts(data: Any) -> dict[str, ArtifactRef]:
    """Artifacts by role from their stored JSON (text or decoded; checked when they were saved)."""
    if isinstance(data, str):
        data = orjson.loads(data)
    if not data:
        return {}
    return {role: _artifact(ref["uri"], ref["sha256"], ref["size"]) for role, ref in data.items()}


def _artifact(uri: str, sha256: str, size: int) -> ArtifactRef:
    """A stored artifact reference, trusted (validated when it was saved)."""
    ref = _new(ArtifactRef)
    _set_uri(ref, uri)
    _set_sha256(ref, sha256)
    _set_size(ref, size)
    return ref


def to_row(model: Model) -> dict[str, Any]:
    """Bind parameters of one model by column name (``version`` is left to the database)."""
    return dict(zip(UPSERT_COLUMNS, to_values(model), strict=True))


class SegmentsMemo:
    """Segments parsed from their stored JSON, remembered (models share a few spans; a Segments is
    immutable, so one instance serves every record that has those spans)."""

    __slots__ = ("_known", "_size")

    def __init__(self, size: int = 1024) -> None:
        self._known: dict[str | tuple[Any, ...], Segments] = {}
        self._size = size

    def __call__(self, data: Any) -> Segments:
        """The segments of stored JSON: its text (keyed as it is) or a decoded object."""
        try:
            key = data if isinstance(data, str) else tuple((k, *v) for k, v in data.items())
            found = self._known.get(key)
        except (AttributeError, TypeError):
            return stored_segments(data)
        if found is None:
            found = stored_segments(orjson.loads(data) if isinstance(data, str) else data)
            if len(self._known) < self._size:
                self._known[key] = found
        return found


def stored_segments(data: Any) -> Segments:
    """The segments of a stored record (checked when it was saved: the order is not checked again)."""
    return Segments.from_json(data, ordered=False)


class _Building:
    """A record being built: :class:`Model`'s slots without its frozen ``__setattr__``. :func:`from_row`
    fills each slot with a plain attribute store (the cheapest way CPython has to set a slot: several times
    cheaper than calling the slot's setter, and a frozen dataclass refuses plain stores), then makes the
    object the Model it is by ``__class__`` assignment, which CPython allows between classes of one slot
    layout (checked below, at import)."""

    __slots__ = Model.__slots__


def from_row(row: Sequence[Any], json_fields: Callable[[Sequence[Any]], tuple[Any, ...]]) -> Model:
    """A model from a row in ``tables.COLUMNS`` order. Rows were validated on the way in, so the
    record is rebuilt without re-running the checks (reads are the hot path: one store per field, written
    out, no loop). ``json_fields(row)`` gives the :data:`~hikyuu_qlib.domain.model.DEFERRABLE` values;
    when the driver hands JSON over as text, it runs on the record's first read of one of them."""
    (
        id_,
        name,
        version,
        model_type,
        status,
        hyper,
        feature_set,
        universe,
        _segments,
        label,
        _metrics,
        _tags,
        chash,
        created,
        updated,
        _artifacts,
    ) = row
    model: Any = _new(_Building)
    if type(hyper) is str:  # text, as sqlite3 and asyncpg give it: decoded when first read
        deferred = _new(Deferred)
        deferred.load = json_fields
        deferred.source = row
        model.hyperparameters = model.segments = model.metrics = model.artifacts = model.tags = deferred
    else:
        model.hyperparameters, model.segments, model.metrics, model.artifacts, model.tags = json_fields(row)
    model.id = id_
    model.name = name
    model.model_type = _TYPES.get(model_type) or ModelType.parse(model_type)
    model.version = version
    model.status = _STATUSES.get(status) or ModelStatus.parse(status)
    model.feature_set = feature_set
    model.universe = universe
    model.label = label
    model.config_hash = chash
    model.created_at = created  # stored microseconds: a datetime on first read (see STAMPS)
    model.updated_at = updated
    model.__class__ = Model
    return model  # type: ignore[no-any-return]


NO_SEGMENTS = Segments()


def with_version(model: Model, version: int) -> Model:
    """The same record with the version the database assigned (no re-validation)."""
    if model.version == version:
        return model
    values = [get(model) for get in _SLOT_GETTERS]  # as stored: deferred fields stay deferred
    values[_VERSION_AT] = version
    return _assemble(values)


def _assemble(values: Sequence[Any]) -> Model:
    """A model from its field values in slot order, trusted (no validation: reads are the hot path)."""
    model = object.__new__(Model)
    # (not strict: every caller passes one value per slot, and a strict zip costs more than the rest here)
    for put, value in zip(_SLOT_SETTERS, values, strict=False):
        put(model, value)
    return model


_SLOTS = tuple(field_slot(name) for name in Model.__slots__)
_SLOT_SETTERS = tuple(slot.__set__ for slot in _SLOTS)
_SLOT_GETTERS = tuple(slot.__get__ for slot in _SLOTS)
_new = object.__new__
# from_row stores each of these fields by name
if Model.__slots__ != (
    "id",
    "name",
    "model_type",
    "version",
    "status",
    "hyperparameters",
    "feature_set",
    "universe",
    "segments",
    "label",
    "metrics",
    "artifacts",
    "tags",
    "config_hash",
    "created_at",
    "updated_at",
):
    raise RuntimeError("Model's fields changed: update hikyuu_qlib.registry.codec.from_row")
# from_row's records become Models by __class__ assignment: one slot layout, or it fails here, at import
_probe: Any = _new(_Building)
_probe.__class__ = Model
del _probe
_get_created, _get_updated = (field_slot(name).__get__ for name in STAMPS)
_set_uri, _set_sha256, _set_size = (getattr(ArtifactRef, name).__set__ for name in ArtifactRef.__slots__)
_VERSION_AT = Model.__slots__.index("version")
