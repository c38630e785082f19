"""Driver-level SQL for the async repository's hot path (aiosqlite or asyncpg).

SQLAlchemy builds and compiles the statements for the engine's dialect and owns the async pool
(checkout, invalidation of dead connections, migrations); an operation then runs the compiled SQL on
the pooled connection's driver object. With aiosqlite every driver call is a hop to its thread, and
SQLAlchemy's adapter makes several per statement; going direct makes a read one hop
(``execute_fetchall``) and a write three (``BEGIN IMMEDIATE``, the upsert, ``COMMIT``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hikyuu_qlib.observability.statements import StatementSpans


@dataclass(frozen=True, slots=True)
class Positional:
    """Compiled SQL with positional parameters (``?`` or ``$n``) and how to fill them from names."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    @classmethod
    def compile(cls, stmt: sa.ClauseElement, dialect: sa.Dialect) -> Positional:
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        names = tuple(getattr(compiled, "positiontup", None) or ())
        return cls(str(compiled), names, {k: v for k, v in compiled.params.items() if v is not None})

    def args(self, params: dict[str, Any] | None = None) -> list[Any]:
        values = {**self.defaults, **params} if params else self.defaults
        return [values.get(n) for n in self.names]


class AsyncDriver:
    """The few calls the repository needs, on an aiosqlite or asyncpg connection."""

    __slots__ = ("_conn", "_pg", "_tx")

    def __init__(self, conn: Any, backend: str) -> None:
        self._conn = conn
        self._pg = backend == "postgresql"
        self._tx: Any = None

    async def begin(self) -> None:
        if self._pg:
            self._tx = self._conn.transaction()
            await self._tx.start()
        else:
            await self._conn.execute("BEGIN IMMEDIATE")

    async def commit(self) -> None:
        if self._pg:
            await self._tx.commit()
        else:
            await self._conn.commit()

    async def rollback(self) -> None:
        if self._pg:
            if self._tx is not None:
                await self._tx.rollback()
        else:
            await self._conn.rollback()

    async def fetch(self, stmt: Positional, params: dict[str, Any] | None = None) -> Sequence[Any]:
        if self._pg:
            return await self._conn.fetch(stmt.sql, *stmt.args(params))  # type: ignore[no-any-return]
        return await self._conn.execute_fetchall(stmt.sql, stmt.args(params))  # type: ignore[no-any-return]

    async def execute(self, stmt: Positional, params: dict[str, Any] | None = None) -> int:
        """Run a statement without rows; returns the number of rows it changed."""
        if self._pg:
            status: str = await self._conn.execute(stmt.sql, *stmt.args(params))
            return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0
        cursor = await self._conn.execute(stmt.sql, stmt.args(params))
        try:
            return int(cursor.rowcount)
        finally:
            await cursor.close()

    # --- SQLite only: statements written by hand with ``?`` parameters (see registry.writes) ---------

    async def fetch_sql(self, sql: str, args: Sequence[Any]) -> Sequence[Any]:
        return await self._conn.execute_fetchall(sql, args)  # type: ignore[no-any-return]

    async def execute_sql(self, sql: str, args: Sequence[Any]) -> None:
        cursor = await self._conn.execute(sql, args)
        await cursor.close()


class TracedAsyncDriver(AsyncDriver):
    """:class:`AsyncDriver` whose statements are each one client span (tracing on; see
    :mod:`hikyuu_qlib.observability.statements`)."""

    __slots__ = ("_spans",)

    def __init__(self, conn: Any, backend: str, spans: StatementSpans) -> None:
        super().__init__(conn, backend)
        self._spans = spans

    async def fetch(self, stmt: Positional, params: dict[str, Any] | None = None) -> Sequence[Any]:
        with self._spans.span(stmt.sql):
            return await super().fetch(stmt, params)

    async def execute(self, stmt: Positional, params: dict[str, Any] | None = None) -> int:
        with self._spans.span(stmt.sql):
            return await super().execute(stmt, params)

    async def fetch_sql(self, sql: str, args: Sequence[Any]) -> Sequence[Any]:
        with self._spans.span(sql):
            return await super().fetch_sql(sql, args)

    async def execute_sql(self, sql: str, args: Sequence[Any]) -> None:
        with self._spans.span(sql):
            await super().execute_sql(sql, args)
