"""Driver-level SQL for the sync facade's hot path.

SQLAlchemy builds and compiles every statement (once, for the engine's dialect); the facade then runs
the compiled SQL on the pooled DBAPI connection (``engine.raw_connection()``) with dict parameters.
This skips SQLAlchemy's per-call Connection/Result layers, which cost more than SQLite itself
(a save goes from ~400 µs to well under 100 µs). Pooling, invalidation of dead connections,
migrations and statement construction stay SQLAlchemy's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.registry.codec import NO_SEGMENTS, SegmentsMemo, from_row, stored_artifacts, to_row
from hikyuu_qlib.registry.tables import COLUMNS
from hikyuu_qlib.registry.writes import json_text

JSON_COLUMNS = ("hyperparameters", "segments", "metrics", "artifacts", "tags")
_H, _S, _M, _A, _T = (
    COLUMNS.index(c) for c in ("hyperparameters", "segments", "metrics", "artifacts", "tags")
)


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    params: dict[str, Any]


def compile_statement(stmt: sa.ClauseElement, dialect: sa.Dialect) -> Compiled:
    """Driver SQL (named/pyformat parameters) and the parameter values bound in the statement."""
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    return Compiled(str(compiled), dict(compiled.params))


class RowCodec:
    """Models ⇄ driver rows (JSON fields as text on the way in, decoded on the way out)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.segments = SegmentsMemo()
        self._json_fields = self.json_fields  # bound once: every record read carries it

    @staticmethod
    def params(model: Model) -> dict[str, Any]:
        row = to_row(model)
        for name in JSON_COLUMNS:
            row[name] = json_text(row[name])
        return row

    def model(self, row: Sequence[Any]) -> Model:
        """The record of a row; JSON the driver gives as text is decoded on the record's first read of
        one of those fields (see :class:`~hikyuu_qlib.domain.model.Deferred`)."""
        return from_row(row, self._json_fields)

    def json_fields(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """The row's :data:`~hikyuu_qlib.domain.model.DEFERRABLE` values: its JSON texts decoded in one
        parse (one ``loads`` call, not four); the segments parsed once per distinct text
        (:class:`~.codec.SegmentsMemo`). sqlite3 and asyncpg hand JSON over as text; psycopg decodes it."""
        h, m, a, t = row[_H], row[_M], row[_A], row[_T]
        if isinstance(h, str):
            h, m, a, t = orjson.loads(f"[{h},{m},{a},{t}]")
        segments = row[_S]
        return (
            h,
            self.segments(segments) if segments else NO_SEGMENTS,
            m,
            stored_artifacts(a) if a else {},
            t,
        )


def ids_condition(backend: str) -> str:
    """SQL matching ``id`` against a list passed as ONE parameter ``ids`` (no variable-count SQL)."""
    if backend == "sqlite":
        return "id IN (SELECT value FROM json_each(:ids))"
    return "id = ANY(%(ids)s)"


def ids_param(backend: str, ids: list[str]) -> Any:
    return json_text(ids) if backend == "sqlite" else ids
