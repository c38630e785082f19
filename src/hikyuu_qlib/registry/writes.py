"""Saves as statements: the upsert of the model rows and, on SQLite, the model's rows in the tag index.

A save is one upsert of the model row (no SELECT first) and, on SQLite, a rewrite of that model's
``model_tags`` rows in the same transaction. ``save_many`` sends each chunk of models as ONE multi-row
upsert: on SQLite a ``VALUES`` list of bound parameters (parsed once per chunk size and kept in the
driver's statement cache), on PostgreSQL one JSON array expanded by ``jsonb_to_recordset``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.registry.codec import UPSERT_COLUMNS, to_row, to_values
from hikyuu_qlib.registry.query import CHUNK
from hikyuu_qlib.registry.tables import UPDATABLE

_OPTIONS = orjson.OPT_NON_STR_KEYS
_JSON_AT = tuple(
    UPSERT_COLUMNS.index(c) for c in ("hyperparameters", "segments", "metrics", "artifacts", "tags")
)
Step = tuple[str, tuple[Any, ...]]  # one statement and its parameters


def json_text(value: Any) -> str:
    """Compact JSON text (the form every JSON column is bound as)."""
    return orjson.dumps(value, option=_OPTIONS).decode()


def _max_variables() -> int:
    return 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


# Rows per multi-row statement: 1000, or fewer where SQLite allows fewer bound variables.
SQLITE_CHUNK = min(CHUNK, _max_variables() // (len(UPSERT_COLUMNS) + 1))

# --- SQLite: the tag index of a model is rewritten with its row ------------------------------------
_TAGS_CLEAR_ONE = "DELETE FROM model_tags WHERE model_id = ?"
_TAGS_FILL_ONE = (
    "INSERT INTO model_tags (model_id, key, value) SELECT ?, j.key, j.value FROM json_each(?) AS j"
)
_TAGS_CLEAR_MANY = "DELETE FROM model_tags WHERE model_id IN (SELECT value FROM json_each(?))"
# from the rows the batch upsert has just written
_TAGS_FILL_MANY = (
    "INSERT INTO model_tags (model_id, key, value) SELECT m.id, j.key, j.value "
    "FROM models AS m, json_each(m.tags) AS j "
    "WHERE m.id IN (SELECT value FROM json_each(?)) AND m.tags <> '{}'"
)


def sqlite_tag_steps(model: Model, tags_json: str, stored_tags: bool) -> list[Step]:
    """After a save's upsert: clear the model's stored tag rows (if any), write its current tags."""
    steps: list[Step] = [(_TAGS_CLEAR_ONE, (model.id,))] if stored_tags else []
    if model.tags:
        steps.append((_TAGS_FILL_ONE, (model.id, tags_json)))
    return steps


def sqlite_values(model: Model) -> list[Any]:
    """The model's values in ``UPSERT_COLUMNS`` order, JSON fields as text."""
    values = list(to_values(model))
    for i in _JSON_AT:
        values[i] = json_text(values[i])
    return values


@lru_cache(maxsize=16)
def sqlite_upsert_values(rows: int) -> str:
    """Upsert of ``rows`` models bound as ``(ord, *UPSERT_COLUMNS)`` each; returns ``(id, version)``.

    A new model takes the next version of its name: the stored maximum plus its rank among the new
    models of that name in the batch (``row_number`` over the batch order); the SELECT is evaluated
    before the rows are written (the window function materialises it)."""
    one = "(" + ", ".join(["?"] * (len(UPSERT_COLUMNS) + 1)) + ")"
    cols = ", ".join(UPSERT_COLUMNS)
    version = (
        "(SELECT coalesce(max(m.version), 0) FROM models AS m WHERE m.name = v.name)"
        " + row_number() OVER (PARTITION BY v.name,"
        " EXISTS (SELECT 1 FROM models AS k WHERE k.id = v.id) ORDER BY v.ord)"
    )
    updates = ", ".join(f"{c} = excluded.{c}" for c in UPDATABLE)
    return (
        f"WITH v(ord, {cols}) AS (VALUES {', '.join([one] * rows)}) "
        f"INSERT INTO models ({cols}, version) "
        f"SELECT {', '.join('v.' + c for c in UPSERT_COLUMNS)}, {version} FROM v WHERE true "
        f"ON CONFLICT (id) DO UPDATE SET {updates} RETURNING id, version"
    )


@dataclass(frozen=True, slots=True)
class Chunk:
    """One multi-row upsert: its models and parameters, and (SQLite) the statements that rewrite the
    chunk's tag rows after it."""

    models: list[Model]
    sql: str | None  # SQLite: the statement for this many rows; PostgreSQL: the facade's compiled one
    params: Any  # SQLite: the flat parameter list; PostgreSQL: {"rows": JSON array}
    tag_steps: Sequence[Step] = ()


def chunks(models: Sequence[Model], backend: str) -> list[Chunk]:
    """Batches of models, the last save of an id winning, each ready to send as one statement."""
    unique = list({m.id: m for m in models}.values())
    if backend == "postgresql":
        return [_pg_chunk(unique[i : i + CHUNK]) for i in range(0, len(unique), CHUNK)]
    return [_sqlite_chunk(unique[i : i + SQLITE_CHUNK]) for i in range(0, len(unique), SQLITE_CHUNK)]


def _pg_chunk(part: list[Model]) -> Chunk:
    rows = [{"ord": i, **to_row(m)} for i, m in enumerate(part)]
    return Chunk(part, None, {"rows": json_text(rows)})


def _sqlite_chunk(part: list[Model]) -> Chunk:
    params: list[Any] = []
    for i, m in enumerate(part):
        params.append(i)
        params.extend(sqlite_values(m))
    ids = (json_text([m.id for m in part]),)
    return Chunk(
        part, sqlite_upsert_values(len(part)), params, [(_TAGS_CLEAR_MANY, ids), (_TAGS_FILL_MANY, ids)]
    )
