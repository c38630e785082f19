"""The model record: what the registry keeps about one trained (or training) model.

A :class:`Model` is immutable; changes return a new record (``transition``, ``with_metrics`` …).
Validation happens on construction, so a record that exists is a valid record:

* ``model_type`` and ``status`` must be known (:class:`UnknownModelTypeError`, :class:`UnknownModelStatusError`);
* ``hyperparameters`` must be a JSON object (:class:`InvalidHyperparametersError`);
* ``metrics`` must be JSON with finite numbers only (:class:`InvalidMetricsError`);
* status changes follow :data:`TRANSITIONS` (:class:`IllegalTransitionError`).

What every registry backend can store is checked here, with one rule for SQLite and PostgreSQL (PostgreSQL
would refuse, or SQLite accept, what the other does not): ``name``, ``feature_set`` and ``universe`` hold at
most :data:`MAX_NAME_LENGTH` characters; no text (fields, tags, JSON keys and strings) holds a NUL character
or an unpaired surrogate; JSON holds only objects, arrays, strings, finite floats, integers within 64 bits
(``-2**63`` to ``2**64 - 1``) and ``true``/``false``/``null``, objects keyed by strings, nested at most
:data:`MAX_JSON_DEPTH` deep (the registry's JSON codec, orjson, encodes nothing else).

A model's files are its ``artifacts``, by role: :data:`MODEL_ARTIFACT` (the trained model itself, e.g. the
LightGBM booster; also :attr:`Model.artifact`) and :data:`PROCESSORS_ARTIFACT` (the processors' fitted
state), :data:`IMPORTANCE_ARTIFACT` (the feature importance); other roles may be added. Each is an
:class:`ArtifactRef` (URI, sha256, size) into the artifact store.

The id is a ULID: unique and sortable by creation time. ``version`` counts models of the same name
(1, 2, …) and is assigned by the registry on first save, so a new record has ``version=None``.

A record read back from the registry may leave its :data:`DEFERRABLE` fields (the JSON ones) undecoded
until one of them is first read (see :class:`Deferred`): a lookup then pays only for what the caller reads.
Its timestamps (:data:`STAMPS`) may likewise stay stored microseconds until each is first read. Nothing
else changes: the fields read as always, and equality, ``repr``, ``replace`` and pickling see the decoded
values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ulid import ULID

from hikyuu_qlib.domain.errors import (
    IllegalTransitionError,
    InvalidHyperparametersError,
    InvalidInputError,
    InvalidMetricsError,
    UnknownModelStatusError,
    UnknownModelTypeError,
)
from hikyuu_qlib.domain.segments import Segments as Segments  # re-exported: the record's segments

JSONObject = dict[str, Any]


class ModelType(StrEnum):
    """Model families the platform trains (Qlib's names where Qlib has one)."""

    LIGHTGBM = "lightgbm"
    XGBOOST = "xgboost"
    CATBOOST = "catboost"
    LINEAR = "linear"
    MLP = "mlp"
    LSTM = "lstm"
    GRU = "gru"
    TRANSFORMER = "transformer"
    TABNET = "tabnet"
    DOUBLE_ENSEMBLE = "double_ensemble"

    @classmethod
    def parse(cls, text: str | ModelType) -> ModelType:
        if isinstance(text, ModelType):
            return text
        key = str(text).strip().lower().replace("-", "_")
        key = {
            "lgb": "lightgbm",
            "lgbm": "lightgbm",
            "xgb": "xgboost",
            "doubleensemble": "double_ensemble",
        }.get(key, key)
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise UnknownModelTypeError(f"unknown model type {text!r}: expected one of {names}") from None


class ModelStatus(StrEnum):
    """Lifecycle: created → training → trained → deployed → archived; failed from created or training."""

    CREATED = "created"
    TRAINING = "training"
    TRAINED = "trained"
    DEPLOYED = "deployed"
    ARCHIVED = "archived"
    FAILED = "failed"

    @classmethod
    def parse(cls, text: str | ModelStatus) -> ModelStatus:
        if isinstance(text, ModelStatus):
            return text
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise UnknownModelStatusError(f"unknown model status {text!r}: expected one of {names}") from None

    def can_become(self, target: ModelStatus) -> bool:
        return target in TRANSITIONS[self]


TRANSITIONS: Mapping[ModelStatus, frozenset[ModelStatus]] = {
    ModelStatus.CREATED: frozenset({ModelStatus.TRAINING, ModelStatus.FAILED, ModelStatus.ARCHIVED}),
    ModelStatus.TRAINING: frozenset({ModelStatus.TRAINED, ModelStatus.FAILED}),
    ModelStatus.TRAINED: frozenset({ModelStatus.DEPLOYED, ModelStatus.ARCHIVED}),
    ModelStatus.DEPLOYED: frozenset({ModelStatus.ARCHIVED}),
    ModelStatus.FAILED: frozenset({ModelStatus.ARCHIVED}),
    ModelStatus.ARCHIVED: frozenset(),
}

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

#: The longest ``name``, ``feature_set`` and ``universe`` (VARCHAR(200) columns), in characters.
MAX_NAME_LENGTH = 200
#: The deepest nesting of JSON objects and arrays the registry's codec encodes (orjson's limit).
MAX_JSON_DEPTH = 254
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def check_text(
    value: Any, what: str, *, limit: int | None = None, error: type[InvalidInputError] = InvalidInputError
) -> str:
    """A string every backend stores as given: no NUL, no unpaired surrogate, at most ``limit`` characters."""
    if not isinstance(value, str):
        raise error(f"invalid {what} {value!r}: expected a string")
    if limit is not None and len(value) > limit:
        raise error(f"{what} is {len(value)} characters long: at most {limit} are stored ({value[:40]!r}…)")
    if "\x00" in value:
        raise error(f"{what} {value[:60]!r} contains a NUL character, which the registry cannot store")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise error(f"{what} {value[:60]!r} is not valid Unicode (an unpaired surrogate)") from None
    return value


def check_json(value: Any, what: str, error: type[InvalidInputError]) -> None:
    """JSON the registry stores on every backend (see the module notes), or ``error`` naming the place."""
    _walk_json(value, what, 0, error)


def _walk_json(value: Any, path: str, depth: int, error: type[InvalidInputError]) -> None:
    kind = type(value)
    if value is None or kind is bool or (kind is str and "\x00" not in value and value.isascii()):
        return
    if isinstance(value, str):
        check_text(value, path, error=error)
    elif isinstance(value, int) and kind is not bool:
        if not _INT_MIN <= value <= _INT_MAX:
            raise error(f"{path} is {value}: integers beyond 64 bits cannot be stored")
    elif kind is float:
        if not math.isfinite(value):
            raise error(f"{path} is {value}: numbers must be finite")
    elif isinstance(value, dict | list | tuple):
        if depth >= MAX_JSON_DEPTH:
            raise error(f"{path} is nested more than {MAX_JSON_DEPTH} levels deep: it cannot be stored")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):  # it would come back as a string: the record would change
                    raise error(
                        f"{path} has the key {key!r} of type {type(key).__name__}: JSON keys are strings"
                    )
                check_text(key, f"key {key[:40]!r} of {path}", error=error)
                _walk_json(item, f"{path}.{key}", depth + 1, error)
        else:
            for i, item in enumerate(value):
                _walk_json(item, f"{path}[{i}]", depth + 1, error)
    else:
        raise error(
            f"{path} is {value!r} of type {kind.__module__}.{kind.__qualname__}: not a JSON value "
            "(convert it to a str, int, float, bool, list or dict)"
        )


#: The role of the trained model's own file in :attr:`Model.artifacts` (for LightGBM, its text model).
MODEL_ARTIFACT = "model"
#: The role of the processors' file: their steps, fitted state and the feature names, as JSON.
PROCESSORS_ARTIFACT = "processors"
#: The role of the feature importance file: by kind (``gain``, ``split`` …), each feature's value, as JSON.
IMPORTANCE_ARTIFACT = "importance"


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """Where a model's file lives: a URI, its sha256 (hex) and its size in bytes."""

    uri: str
    sha256: str
    size: int

    def __post_init__(self) -> None:
        if not self.uri or not isinstance(self.uri, str):
            raise InvalidInputError(f"invalid artifact uri {self.uri!r}: expected a non-empty string")
        check_text(self.uri, "artifact uri")
        if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
            raise InvalidInputError(
                f"invalid artifact sha256 {self.sha256!r}: expected 64 lowercase hex digits"
            )
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise InvalidInputError(f"invalid artifact size {self.size!r}: expected a whole number of bytes")

    def to_json(self) -> JSONObject:
        return {"uri": self.uri, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, data: Any) -> ArtifactRef:
        """An artifact from ``{"uri": …, "sha256": …, "size": …}`` (or an :class:`ArtifactRef`)."""
        if isinstance(data, ArtifactRef):
            return data
        if not isinstance(data, Mapping) or set(data) != {"uri", "sha256", "size"}:
            raise InvalidInputError(f"invalid artifact {data!r}: expected an object of uri, sha256 and size")
        return cls(data["uri"], data["sha256"], data["size"])


def check_artifacts(value: Any) -> dict[str, ArtifactRef]:
    """Artifacts by role: non-empty role names, each an :class:`ArtifactRef` (or its JSON form)."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"artifacts must be a mapping of role to artifact, got {type(value).__name__}"
        )
    out: dict[str, ArtifactRef] = {}
    for role, ref in value.items():
        if not isinstance(role, str) or not role:
            raise InvalidInputError(f"invalid artifact role {role!r}: expected a non-empty string")
        check_text(role, "artifact role", limit=MAX_NAME_LENGTH)
        try:
            out[role] = ArtifactRef.from_json(ref)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{role} artifact: {exc}") from None
    return out


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def config_hash(
    model_type: ModelType,
    hyperparameters: Mapping[str, Any],
    feature_set: str,
    universe: str,
    segments: Segments,
    label: str,
) -> str:
    """sha256 of the canonical JSON of everything that defines a training run."""
    config = {
        "model_type": model_type.value,
        "hyperparameters": hyperparameters,
        "feature_set": feature_set,
        "universe": universe,
        "segments": segments.to_json(),
        "label": label,
    }
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def check_hyperparameters(value: Any) -> JSONObject:
    """A JSON object of hyperparameters (finite numbers), or :class:`InvalidHyperparametersError`."""
    if not isinstance(value, Mapping):
        raise InvalidHyperparametersError(
            f"hyperparameters must be a JSON object, got {type(value).__name__}"
        )
    out = dict(value)
    check_json(out, "hyperparameters", InvalidHyperparametersError)
    return out


def check_metrics(value: Any) -> JSONObject:
    """A JSON object of metrics whose numbers are all finite, or :class:`InvalidMetricsError`."""
    if not isinstance(value, Mapping):
        raise InvalidMetricsError(f"metrics must be a JSON object, got {type(value).__name__}")
    _check_finite(value, "metrics")
    out = dict(value)
    check_json(out, "metrics", InvalidMetricsError)
    return out


def _check_finite(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidMetricsError(f"metric {path} is {value}: metrics must be finite numbers")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_finite(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{path}[{i}]")


def check_tags(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"tags must be a mapping of strings, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not key or not isinstance(item, str):
            raise InvalidInputError(f"invalid tag {key!r}={item!r}: keys and values are non-empty strings")
        check_text(key, "tag key")
        check_text(item, f"tag {key[:40]!r}")
    return dict(value)


@dataclass(frozen=True, slots=True)
class Model:
    """One model record. Build new ones with :meth:`Model.new`."""

    id: str
    name: str
    model_type: ModelType
    version: int | None = None
    status: ModelStatus = ModelStatus.CREATED
    hyperparameters: JSONObject = field(default_factory=dict)
    feature_set: str = ""
    universe: str = ""
    segments: Segments = field(default_factory=Segments)
    label: str = ""
    metrics: JSONObject = field(default_factory=dict)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    config_hash: str = ""
    created_at: dt.datetime = field(default_factory=utcnow)
    updated_at: dt.datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        try:
            ULID.from_str(self.id)
        except (ValueError, TypeError):
            raise InvalidInputError(f"invalid model id {self.id!r}: expected a 26-character ULID") from None
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInputError(f"invalid model name {self.name!r}: must be a non-empty string")
        check_text(self.name, "model name", limit=MAX_NAME_LENGTH)
        check_text(self.feature_set, "feature_set", limit=MAX_NAME_LENGTH)
        check_text(self.universe, "universe", limit=MAX_NAME_LENGTH)
        check_text(self.label, "label")
        if self.version is not None and (not isinstance(self.version, int) or self.version < 1):
            raise InvalidInputError(f"invalid model version {self.version!r}: expected a positive integer")
        set_(self, "model_type", ModelType.parse(self.model_type))
        set_(self, "status", ModelStatus.parse(self.status))
        set_(self, "hyperparameters", check_hyperparameters(self.hyperparameters))
        set_(self, "metrics", check_metrics(self.metrics))
        set_(self, "tags", check_tags(self.tags))
        set_(self, "artifacts", check_artifacts(self.artifacts))
        if not isinstance(self.segments, Segments):
            set_(self, "segments", Segments.from_json(self.segments))
        elif self.segments:
            set_(self, "segments", self.segments.whole_days())
        for name in ("created_at", "updated_at"):
            when = getattr(self, name)
            if not isinstance(when, dt.datetime):
                raise InvalidInputError(f"invalid {name} {when!r}: expected a datetime")
            if when.tzinfo is None:
                set_(self, name, when.replace(tzinfo=dt.UTC))
        if not self.config_hash:
            set_(
                self,
                "config_hash",
                config_hash(
                    self.model_type,
                    self.hyperparameters,
                    self.feature_set,
                    self.universe,
                    self.segments,
                    self.label,
                ),
            )

    @classmethod
    def new(
        cls,
        name: str,
        model_type: ModelType | str,
        *,
        hyperparameters: Mapping[str, Any] | None = None,
        feature_set: str = "",
        universe: str = "",
        segments: Segments | Mapping[str, Any] | None = None,
        label: str = "",
        metrics: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        status: ModelStatus | str = ModelStatus.CREATED,
        artifact: ArtifactRef | None = None,
        artifacts: Mapping[str, ArtifactRef] | None = None,
        now: dt.datetime | None = None,
    ) -> Model:
        """A fresh record with a new ULID, ``created_at = updated_at = now`` and its config hash.

        ``artifact`` is the :data:`MODEL_ARTIFACT` of ``artifacts``."""
        when = now or utcnow()
        segs = segments if isinstance(segments, Segments) else Segments.from_json(segments)
        return cls(
            id=str(ULID.from_datetime(when)),
            name=name,
            model_type=ModelType.parse(model_type),
            status=ModelStatus.parse(status),
            hyperparameters=hyperparameters if hyperparameters is not None else {},  # type: ignore[arg-type]
            feature_set=feature_set,
            universe=universe,
            segments=segs,
            label=label,
            metrics=metrics if metrics is not None else {},  # type: ignore[arg-type]
            artifacts={**(artifacts or {}), **({MODEL_ARTIFACT: artifact} if artifact is not None else {})},
            tags=tags if tags is not None else {},  # type: ignore[arg-type]
            created_at=when,
            updated_at=when,
        )

    def transition(self, target: ModelStatus | str, *, now: dt.datetime | None = None) -> Model:
        """The record in status ``target``, or :class:`IllegalTransitionError` if the lifecycle forbids it."""
        to = ModelStatus.parse(target)
        if not self.status.can_become(to):
            allowed = ", ".join(sorted(s.value for s in TRANSITIONS[self.status])) or "none"
            raise IllegalTransitionError(
                f"model {self.id} cannot go from {self.status.value} to {to.value} (allowed: {allowed})"
            )
        return replace(self, status=to, updated_at=now or utcnow())

    def with_metrics(self, metrics: Mapping[str, Any], *, now: dt.datetime | None = None) -> Model:
        return replace(self, metrics={**self.metrics, **check_metrics(metrics)}, updated_at=now or utcnow())

    @property
    def artifact(self) -> ArtifactRef | None:
        """The trained model's own file: the :data:`MODEL_ARTIFACT` of :attr:`artifacts` (``None`` before
        training)."""
        return self.artifacts.get(MODEL_ARTIFACT)

    def with_artifact(
        self, artifact: ArtifactRef, *, role: str = MODEL_ARTIFACT, now: dt.datetime | None = None
    ) -> Model:
        """The record with ``artifact`` in ``role`` (the model's own file by default)."""
        return self.with_artifacts({role: artifact}, now=now)

    def with_artifacts(
        self, artifacts: Mapping[str, ArtifactRef], *, now: dt.datetime | None = None
    ) -> Model:
        """The record with these artifacts by role (others are kept)."""
        return replace(
            self, artifacts={**self.artifacts, **check_artifacts(artifacts)}, updated_at=now or utcnow()
        )

    def with_tags(self, tags: Mapping[str, str], *, now: dt.datetime | None = None) -> Model:
        return replace(self, tags={**self.tags, **check_tags(tags)}, updated_at=now or utcnow())

    @classmethod
    def from_json(cls, data: Any) -> Model:
        """A record from :meth:`to_json`'s form (what ``hq model show --format json`` and the HTTP API
        print); the record is checked as on any construction."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"a model record is a JSON object, not {type(data).__name__}")
        try:
            return cls(
                id=data["id"],
                name=data["name"],
                model_type=ModelType.parse(data["model_type"]),
                version=data.get("version"),
                status=ModelStatus.parse(data["status"]),
                hyperparameters=data.get("hyperparameters") or {},
                feature_set=data.get("feature_set") or "",
                universe=data.get("universe") or "",
                segments=Segments.from_json(data.get("segments"), ordered=False),
                label=data.get("label") or "",
                metrics=data.get("metrics") or {},
                artifacts={r: ArtifactRef.from_json(a) for r, a in (data.get("artifacts") or {}).items()},
                tags=data.get("tags") or {},
                config_hash=data.get("config_hash") or "",
                created_at=dt.datetime.fromisoformat(data["created_at"]),
                updated_at=dt.datetime.fromisoformat(data["updated_at"]),
            )
        except InvalidInputError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a model record: {type(exc).__name__} {exc}") from None

    def to_json(self) -> JSONObject:
        """A JSON-ready dict (enums as values, datetimes as ISO strings). ``artifact`` repeats the
        :data:`MODEL_ARTIFACT` of ``artifacts`` (``null`` when there is none)."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "model_type": self.model_type.value,
            "status": self.status.value,
            "hyperparameters": self.hyperparameters,
            "feature_set": self.feature_set,
            "universe": self.universe,
            "segments": self.segments.to_json(),
            "label": self.label,
            "metrics": self.metrics,
            "artifact": None if (model := self.artifact) is None else model.to_json(),
            "artifacts": {role: ref.to_json() for role, ref in self.artifacts.items()},
            "tags": self.tags,
            "config_hash": self.config_hash,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


# --- stored records: JSON fields decoded on first read ----------------------------------------------------

#: The fields a stored record may leave undecoded until one of them is read, in the order of the values
#: a :class:`Deferred` loads.
DEFERRABLE: tuple[str, ...] = ("hyperparameters", "segments", "metrics", "artifacts", "tags")


class Deferred:
    """The :data:`DEFERRABLE` field values of a stored record, not decoded yet: ``load(source)`` gives them
    in that order (trusted values: the record was checked when it was saved).

    A trusted builder (the registry's codec) puts one Deferred in each of those fields' slots (see
    :func:`field_slot`); the first read of any of them decodes all of them at once and keeps the values.
    Only the builder makes them: a Deferred given to ``Model(...)`` is refused like any other non-JSON value.
    """

    __slots__ = ("load", "source")

    load: Callable[[Any], tuple[Any, ...]]
    source: Any


class _DeferrableField:
    """The descriptor of one :data:`DEFERRABLE` field of :class:`Model`, over the field's own slot: reads
    resolve a :class:`Deferred` (all such fields at once), writes store as the slot does."""

    __slots__ = ("_at", "_get", "_set", "slot")

    def __init__(self, slot: Any, at: int) -> None:
        self.slot = slot
        self._get, self._set, self._at = slot.__get__, slot.__set__, at

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        value = self._get(obj)
        if type(value) is Deferred:
            value = _undefer(obj, value)[self._at]
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        if type(value) is Deferred:  # only the builder defers, through the slot itself
            raise InvalidInputError("a deferred value is not a field value")
        self._set(obj, value)


def _undefer(model: Model, deferred: Deferred) -> tuple[Any, ...]:
    """Decode a stored record's deferred fields and keep the values (a frozen record's cache: reading
    twice gives the same objects)."""
    values = deferred.load(deferred.source)
    for put, value in zip(_DEFERRABLE_SETTERS, values, strict=True):
        put(model, value)
    return values


def field_slot(name: str) -> Any:
    """The member descriptor of :class:`Model`'s slot for field ``name``: what a trusted builder (the
    registry's codec) sets directly, bypassing validation (and, for a :data:`DEFERRABLE` or :data:`STAMPS`
    field, decoding)."""
    attribute = Model.__dict__[name]
    return attribute.slot if isinstance(attribute, _DeferrableField | _StampField) else attribute


# --- stored records: timestamps turned into datetimes on first read ---------------------------------------

#: The fields a stored record may hold as whole microseconds since the epoch (UTC, as the registry stores
#: them) until each is first read.
STAMPS: tuple[str, ...] = ("created_at", "updated_at")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Below this, ``micros / 1e6`` is within 0.48 µs of the exact time (one rounding of a double under
#: 2**32 s), so ``fromtimestamp``, which rounds to the nearest microsecond, gives the exact datetime.
_FLOAT_EXACT_BELOW = 2**32 * 1_000_000  # µs: the year 2106
_fromtimestamp = dt.datetime.fromtimestamp


def from_micros(micros: int) -> dt.datetime:
    """The UTC datetime of whole microseconds since the epoch (exact at any value)."""
    if 0 <= micros < _FLOAT_EXACT_BELOW:
        return _fromtimestamp(micros / 1e6, dt.UTC)  # one C call: the common case
    return _EPOCH + dt.timedelta(0, 0, micros)


class _StampField:
    """The descriptor of one :data:`STAMPS` field of :class:`Model`, over the field's own slot: a trusted
    builder (the registry's codec) may store the stored microseconds (an ``int``) in the slot; the first
    read turns them into the datetime and keeps it. Writes store as the slot does, datetimes only."""

    __slots__ = ("_get", "_name", "_set", "slot")

    def __init__(self, slot: Any, name: str) -> None:
        self.slot, self._name = slot, name
        self._get, self._set = slot.__get__, slot.__set__

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        value = self._get(obj)
        if type(value) is int:
            value = from_micros(value)
            self._set(obj, value)  # a frozen record's cache: reading twice gives the same object
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        if type(value) is int:  # only the builder stores microseconds, through the slot itself
            raise InvalidInputError(f"invalid {self._name} {value!r}: expected a datetime")
        self._set(obj, value)


_DEFERRABLE_SETTERS = tuple(Model.__dict__[name].__set__ for name in DEFERRABLE)
for _at, _name in enumerate(DEFERRABLE):
    setattr(Model, _name, _DeferrableField(Model.__dict__[_name], _at))
for _name in STAMPS:
    setattr(Model, _name, _StampField(Model.__dict__[_name], _name))
del _at, _name
