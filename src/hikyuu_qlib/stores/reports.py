"""One shape for the reports of a batch over codes (an export to Qlib, a TDX import).

Every such report says which codes were done (``ok``) and which failed (``failed``: code, or file,
mapped to ``"ErrorType: message"``, the form the CLI classifies into exit codes), then its own lists and
counts; ``to_dict()`` gives it as plain values for JSON and ``key: value`` lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any


def describe(exc: BaseException) -> str:
    """An error as a report keeps it: ``"ErrorType: message"``."""
    return f"{type(exc).__name__}: {exc}"


@dataclass(slots=True, kw_only=True)
class BatchReport:
    """What a batch over codes did: the codes done, in the order they were done (``ok``), and each
    failure (``failed``)."""

    ok: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def fail(self, key: str, exc: BaseException) -> None:
        """Record ``key`` (a code or a file) as failed with ``exc``."""
        self.failed[key] = describe(exc)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain values (paths and enums as text, tuples as lists): its own fields, then
        ``ok`` and ``failed``."""
        shared = ("ok", "failed")
        doc = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in shared}
        doc.update({name: _plain(getattr(self, name)) for name in shared})
        return doc


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


__all__ = ["BatchReport", "describe"]
