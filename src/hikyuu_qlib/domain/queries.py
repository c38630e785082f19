"""The vocabulary of model queries: which models (:class:`ModelFilter`), in which order (:class:`ModelOrder`),
one page at a time (:class:`Page`). The registry turns them into statements (``registry.query``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import ModelStatus, ModelType

T = TypeVar("T")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class ModelOrder(StrEnum):
    """Orders offered by ``find``: by creation time, or by name then version; ``-`` is descending."""

    CREATED = "created"
    CREATED_DESC = "-created"
    NAME = "name"
    NAME_DESC = "-name"

    @classmethod
    def parse(cls, text: str | ModelOrder) -> ModelOrder:
        if isinstance(text, ModelOrder):
            return text
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise InvalidInputError(
                f"unknown order {text!r}: expected created, -created, name or -name"
            ) from None


@dataclass(frozen=True, slots=True)
class ModelFilter:
    """Conditions of ``find``/``count``/``iterate``; all given ones must hold."""

    status: ModelStatus | None = None
    model_type: ModelType | None = None
    name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    created_from: dt.datetime | None = None  # inclusive
    created_to: dt.datetime | None = None  # exclusive

    def __post_init__(self) -> None:
        if self.status is not None:
            object.__setattr__(self, "status", ModelStatus.parse(self.status))
        if self.model_type is not None:
            object.__setattr__(self, "model_type", ModelType.parse(self.model_type))
        for name in ("created_from", "created_to"):
            when = getattr(self, name)
            if when is not None and when.tzinfo is None:
                object.__setattr__(self, name, when.replace(tzinfo=dt.UTC))

    def fingerprint(self) -> str:
        """A short digest of the conditions (a page cursor is bound to the filter it was made for)."""
        doc = {
            "s": self.status and self.status.value,
            "t": self.model_type and self.model_type.value,
            "n": self.name,
            "g": sorted(self.tags.items()),
            "a": self.created_from and _micros(self.created_from),
            "b": self.created_to and _micros(self.created_to),
        }
        return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()[:16]


def _micros(when: dt.datetime) -> int:
    """Microseconds since the Unix epoch (the registry's time column unit)."""
    return (when - _EPOCH) // _MICROSECOND


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results and the cursor of the next one (``None`` on the last page)."""

    items: list[T]
    next_cursor: str | None
