"""The SQL statements of the registry (built once per dialect), from the query vocabulary of
:mod:`hikyuu_qlib.domain.queries`.

Every filter and order has an index (see ``tables``): status, type and created range use
``(status|model_type, created_at, id)`` / ``(created_at, id)``; name and the name order use the unique
``(name, version)``; tags use ``model_tags (key, value, model_id)`` on SQLite and a GIN index on PostgreSQL.
Pages are keyset pages: ``WHERE key >= last AND (key > last OR tiebreak > last_tiebreak)``, which seeks
the index instead of skipping rows, so a page costs the same at any depth.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.queries import ModelFilter, ModelOrder
from hikyuu_qlib.registry.codec import to_micros
from hikyuu_qlib.registry.tables import COLUMNS, UPDATABLE, model_tags, models

MAX_LIMIT = 10_000
CHUNK = 1000  # ids per get_many/delete_many statement (one JSON or array parameter each)


def conditions(flt: ModelFilter, backend: str) -> list[sa.ColumnElement[bool]]:
    m = models.c
    where: list[sa.ColumnElement[bool]] = []
    if flt.status is not None:
        where.append(m.status == flt.status.value)
    if flt.model_type is not None:
        where.append(m.model_type == flt.model_type.value)
    if flt.name is not None:
        where.append(m.name == flt.name)
    if flt.created_from is not None:
        where.append(m.created_at >= to_micros(flt.created_from))
    if flt.created_to is not None:
        where.append(m.created_at < to_micros(flt.created_to))
    for key, value in sorted(flt.tags.items()):
        if backend == "postgresql":
            wanted = sa.cast(sa.literal(json.dumps({key: value}), sa.Text), postgresql.JSONB)
            where.append(sa.type_coerce(m.tags, postgresql.JSONB).contains(wanted))
        else:
            t = model_tags.c
            where.append(m.id.in_(sa.select(t.model_id).where(t.key == key, t.value == value)))
    return where


def order_keys(order: ModelOrder) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any], bool]:
    """(primary key column, tie-break column, descending)."""
    if order in (ModelOrder.CREATED, ModelOrder.CREATED_DESC):
        return models.c.created_at, models.c.id, order is ModelOrder.CREATED_DESC
    return models.c.name, models.c.version, order is ModelOrder.NAME_DESC


def row_keys(order: ModelOrder, row: Sequence[Any]) -> list[Any]:
    if order in (ModelOrder.CREATED, ModelOrder.CREATED_DESC):
        return [row[COLUMNS.index("created_at")], row[0]]
    return [row[1], row[2]]


def find_statement(
    flt: ModelFilter, order: ModelOrder, after: list[Any] | None, limit: int, backend: str
) -> sa.Select[Any]:
    first, second, desc = order_keys(order)
    where = conditions(flt, backend)
    if after is not None:
        if len(after) != 2:
            raise InvalidInputError("invalid cursor keys")
        a, b = after
        if desc:
            where.append(sa.and_(first <= a, sa.or_(first < a, second < b)))
        else:
            where.append(sa.and_(first >= a, sa.or_(first > a, second > b)))
    ordering = [first.desc(), second.desc()] if desc else [first.asc(), second.asc()]
    return sa.select(models).where(*where).order_by(*ordering).limit(limit)


def count_statement(flt: ModelFilter, backend: str) -> sa.Select[Any]:
    return sa.select(sa.func.count()).select_from(models).where(*conditions(flt, backend))


def get_statement() -> sa.Select[Any]:
    return sa.select(models).where(models.c.id == sa.bindparam("id"))


def get_many_statement() -> sa.Select[Any]:
    return sa.select(models).where(models.c.id.in_(sa.bindparam("ids", expanding=True)))


def delete_many_statement() -> sa.Delete:
    return sa.delete(models).where(models.c.id.in_(sa.bindparam("ids", expanding=True)))


def prefix_statement(prefix: str) -> sa.Select[Any]:
    """Ids starting with ``prefix`` (a range on the primary key, so it seeks); two are enough to decide."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return (
        sa.select(models.c.id)
        .where(models.c.id >= prefix, models.c.id < upper)
        .order_by(models.c.id)
        .limit(2)
    )


def upsert_one_statement(backend: str) -> sa.Insert | sa.TextClause:
    """One statement: insert with the next version of the name, or update the mutable fields.

    SQLite (one writer at a time): ``version = max(version of name) + 1`` in a scalar subquery; returns
    ``(version, has stored tag rows)``.
    PostgreSQL (concurrent writers): a data-modifying CTE bumps ``model_names.last_version`` for a new id;
    its row lock orders concurrent saves of one name, so versions never collide (no retry storm).
    """
    if backend == "postgresql":
        return _pg_upsert_one()
    ins = sqlite.insert(models)
    next_version = (
        sa.select(sa.func.coalesce(sa.func.max(models.c.version), 0) + 1)
        .where(models.c.name == sa.bindparam("name"))
        .scalar_subquery()
    )
    values: dict[str, Any] = {c: sa.bindparam(c) for c in COLUMNS if c != "version"}
    values["version"] = next_version
    stmt = ins.values(values)
    # and whether the model has tag rows stored (so a new model's save skips clearing them)
    # (as SQL text: SQLAlchemy does not correlate a subquery in RETURNING with the inserted row)
    has_tags: sa.ColumnClause[bool] = sa.literal_column(
        "EXISTS (SELECT 1 FROM model_tags WHERE model_tags.model_id = models.id)"
    )
    return stmt.on_conflict_do_update(
        index_elements=[models.c.id], set_={c: stmt.excluded[c] for c in UPDATABLE}
    ).returning(models.c.version, has_tags)


def _pg_columns() -> tuple[list[str], dict[str, str]]:
    cols = [c for c in COLUMNS if c != "version"]
    json_cols = {"hyperparameters", "segments", "metrics", "artifacts", "tags"}
    big = {"created_at", "updated_at"}
    return cols, {c: "jsonb" if c in json_cols else "bigint" if c in big else "text" for c in cols}


def _pg_upsert_one() -> sa.TextClause:
    cols, types = _pg_columns()
    updates = ", ".join(f"{c} = excluded.{c}" for c in UPDATABLE)
    values = ", ".join(f"CAST(:{c} AS {types[c]})" for c in cols)
    sql = (
        "WITH bumped AS (INSERT INTO model_names (name, last_version) "
        "SELECT CAST(:name AS text), 1 WHERE NOT EXISTS (SELECT 1 FROM models WHERE id = CAST(:id AS text)) "
        "ON CONFLICT (name) DO UPDATE SET last_version = model_names.last_version + 1 RETURNING last_version) "
        f"INSERT INTO models ({', '.join(cols)}, version) "
        f"SELECT {values}, coalesce((SELECT last_version FROM bumped), 0) "
        f"ON CONFLICT (id) DO UPDATE SET {updates} RETURNING version"
    )
    return sa.text(sql)


def pg_upsert_many_sql() -> sa.TextClause:
    """PostgreSQL: a multi-row upsert of the rows in one JSON array parameter ``:rows``.

    Versions come from ``model_names`` bumped once per name by the number of new ids in the batch,
    and are numbered inside the batch by ``row_number`` (counting only ids not stored yet).
    Returns ``(id, version)``. (SQLite's multi-row upsert is in :mod:`hikyuu_qlib.registry.writes`.)
    """
    cols, types = _pg_columns()
    updates = ", ".join(f"{c} = excluded.{c}" for c in UPDATABLE)
    record = ", ".join(["ord bigint", *(f"{c} {types[c]}" for c in cols)])
    sql = (
        f"WITH v AS (SELECT j.*, NOT EXISTS (SELECT 1 FROM models AS k WHERE k.id = j.id) AS is_new "
        f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS j({record})), "
        "counts AS (SELECT name, count(*) AS n FROM v WHERE is_new GROUP BY name), "
        "bumped AS (INSERT INTO model_names (name, last_version) SELECT name, n FROM counts ORDER BY name "
        "ON CONFLICT (name) DO UPDATE SET last_version = model_names.last_version + excluded.last_version "
        "RETURNING name, last_version) "
        f"INSERT INTO models ({', '.join(cols)}, version) "
        f"SELECT {', '.join('v.' + c for c in cols)}, CASE WHEN v.is_new THEN b.last_version - c.n "
        "+ row_number() OVER (PARTITION BY v.name, v.is_new ORDER BY v.ord) ELSE 0 END "
        "FROM v LEFT JOIN bumped AS b ON b.name = v.name LEFT JOIN counts AS c ON c.name = v.name "
        f"ON CONFLICT (id) DO UPDATE SET {updates} RETURNING id, version"
    )
    return sa.text(sql)
