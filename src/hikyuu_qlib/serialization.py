"""JSON text for results: NaN/inf as null, dates as ISO strings, enums and paths as their values."""

from __future__ import annotations

import datetime as dt
import json
import math
from enum import Enum
from pathlib import Path
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return clean(item())
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def clean(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def to_json_text(document: Any, *, indent: int | None = None) -> str:
    return json.dumps(clean(document), default=_default, ensure_ascii=False, allow_nan=False, indent=indent)


def flatten(groups: dict[str, Any]) -> dict[str, Any]:
    """``{"a": {"x": 1}, "b": 2}`` → ``{"a.x": 1, "b": 2}`` (one level)."""
    out: dict[str, Any] = {}
    for group, values in groups.items():
        if isinstance(values, dict):
            out.update({f"{group}.{k}": v for k, v in values.items()})
        else:
            out[group] = values
    return out
