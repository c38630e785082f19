"""The fast path of the async repository's single ``get``: straight to the database, no batching, no pool.

The :class:`~hikyuu_qlib.registry.repository.GetBatcher` helps concurrent gets (one query for many), but a
single awaited get would pay for it: a loop turn, a task, a pool checkout through SQLAlchemy's greenlet
bridge (and a ping on PostgreSQL), a hop to aiosqlite's thread. A single get goes here first:

* SQLite (:class:`SqlitePointReader`): the lookup by primary key runs on the event loop's own thread, on a
  private ``sqlite3`` connection to the memory-mapped file. It costs a few microseconds of CPU, less than one
  hop to a worker thread. It never waits: with a busy timeout of 0, a database that is momentarily busy
  (a checkpoint restarting the WAL, a recovery) answers at once and the get takes the ordinary path (pool,
  busy timeout, retries). Every ``YIELD_EVERY`` reads the caller yields to the loop once, so a loop of
  awaited gets cannot starve other tasks.
* PostgreSQL (:class:`PgPointReader`): a connection of its own (opened on first use, outside the pool) with
  the statement prepared: one round trip, run by asyncpg's protocol call itself. While it serves one get, concurrent gets go to the batcher. Any
  failure discards the connection and the get takes the ordinary retried path, so a fault costs time,
  never a wrong answer.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.observability.statements import StatementSpans
from hikyuu_qlib.registry.engine import MMAP_BYTES

YIELD_EVERY = 32


class SqlitePointReader:
    """Reads one row by id on the calling thread; raises ``sqlite3.Error`` when it cannot (the caller
    then takes the ordinary path)."""

    __slots__ = ("_conn", "_sql", "reads")

    def __init__(self, uri: str, sql: str) -> None:
        self._conn = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA query_only=1")
        self._conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        self._sql = sql
        self.reads = 0

    def read(self, model_id: str) -> Sequence[Any] | None:
        # fetchall steps the statement to its end, so no read transaction (WAL snapshot) stays open
        rows = self._conn.execute(self._sql, (model_id,)).fetchall()
        self.reads += 1
        return rows[0] if rows else None

    def close(self) -> None:
        self._conn.close()


class PgPointReader:
    """One asyncpg connection with the get statement prepared; ``get`` returns the record (``model(row)``)
    or, when the fast path cannot serve, what the ordinary path (``fallback(id)``) gives.

    A read runs the prepared statement through the call asyncpg's own ``PreparedStatement.fetchrow`` makes
    (the protocol's ``bind_execute``: the same messages, the same rows), without the three coroutine
    frames, the lambda and the validity check it wraps it in, which on a ~30 µs round trip are several
    per cent; ``get`` awaits that call itself (one frame between the caller and the protocol). What those
    layers add is covered here: a closed connection or a statement gone stale fails in the protocol
    (``ConnectionDoesNotExistError``, ``InterfaceError``, ``OutdatedSchemaCacheError``), and any failure
    discards the connection. With an asyncpg that lacks that call, reads take the public ``fetch``
    (:func:`statement_call`)."""

    __slots__ = (
        "_call",
        "_closed",
        "_conn",
        "_connect",
        "_fallback",
        "_model",
        "_resume_at",
        "_sql",
        "_stmt",
        "busy",
    )

    #: after a failure, gets take the ordinary path for this long before the fast path is tried again
    PAUSE_S = 1.0

    def __init__(
        self,
        connect_kwargs: dict[str, Any],
        sql: str,
        model: Callable[[Any], Model],
        fallback: Callable[[str], Awaitable[Model | None]],
    ) -> None:
        self._connect = connect_kwargs
        self._sql = sql
        self._model = model
        self._fallback = fallback
        self._conn: Any = None
        self._stmt: Any = None  # held: a prepared statement no object refers to is closed by asyncpg
        self._call: StatementCall | None = None
        self._resume_at = 0.0
        self._closed = False
        self.busy = False

    async def get(self, model_id: str) -> Model | None:
        """The record with this id, or ``None``; while the connection serves another get, or when it is
        not there (not connected yet, discarded after a failure, closed), or fails, the ordinary path."""
        call = self._call
        if call is None or self.busy:
            return await self._get_otherwise(model_id)
        self.busy = True
        try:
            rows = await call((model_id,), "", 1, False, None)
        except Exception:
            self.busy = False
            self._failed()
            return await self._fallback(model_id)
        except BaseException:  # cancelled in the middle of a query: the connection's state is unknown
            self.busy = False
            self.discard()
            raise
        self.busy = False
        return self._model(rows[0]) if rows else None

    async def _get_otherwise(self, model_id: str) -> Model | None:
        """No connection (or busy): connect and read unless busy, closed or paused; else the ordinary path."""
        if not self.busy:
            served, row = await self._first_read(model_id)
            if served:
                return None if row is None else self._model(row)
        return await self._fallback(model_id)

    async def _first_read(self, model_id: str) -> tuple[bool, Any]:
        """Connect and prepare (unless closed, or paused after a failure), then read: ``(True, row or
        None)``, or ``(False, None)`` when the get must take the ordinary path."""
        if self._closed or time.monotonic() < self._resume_at:
            return False, None
        self.busy = True
        try:
            import asyncpg

            conn = self._conn = await asyncpg.connect(**self._connect)
            if self._closed:  # closed while connecting
                self.discard()
                return False, None
            stmt = await conn.prepare(self._sql)
            call = self._statement_call(conn, stmt)
            rows = await call((model_id,), "", 1, False, None)
            if self._conn is conn:  # neither closed nor discarded meanwhile
                self._stmt, self._call = stmt, call
            return True, rows[0] if rows else None
        except Exception:
            self._failed()
            return False, None
        except BaseException:
            self.discard()
            raise
        finally:
            self.busy = False

    def _statement_call(self, conn: Any, stmt: Any) -> StatementCall:
        """How ``get`` runs the prepared statement (the traced reader wraps it in a span)."""
        return statement_call(conn, stmt)

    def _failed(self) -> None:
        self.discard()
        self._resume_at = time.monotonic() + self.PAUSE_S

    def discard(self) -> None:
        conn, self._conn, self._stmt, self._call = self._conn, None, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    async def close(self) -> None:
        self._closed = True
        conn, self._conn, self._stmt, self._call = self._conn, None, None, None
        if conn is not None:
            try:
                await conn.close(timeout=2)
            except Exception:
                conn.terminate()


#: ``call(args, portal, limit, return_extra, timeout)``: the rows (a list, or ``None`` for none) of one
#: run of a prepared statement (a point read passes ``(id,), "", 1, False, None``)
StatementCall = Callable[[tuple[Any, ...], str, int, bool, float | None], Awaitable[list[Any] | None]]


def statement_call(conn: Any, stmt: Any) -> StatementCall:
    """How a read runs the prepared ``stmt`` of asyncpg connection ``conn``: the protocol call beneath
    ``PreparedStatement.fetchrow`` (see :class:`PgPointReader`), or the public ``fetch`` when this asyncpg
    has no such call."""
    protocol, state = getattr(conn, "_protocol", None), getattr(stmt, "_state", None)
    bind_execute = getattr(protocol, "bind_execute", None)
    if state is not None and callable(bind_execute):
        return functools.partial(bind_execute, state)

    async def public(
        args: tuple[Any, ...], _portal: str, _limit: int, _extra: bool, timeout: float | None
    ) -> list[Any] | None:
        row = await stmt.fetchrow(*args, timeout=timeout)
        return [] if row is None else [row]

    return public


class TracedSqlitePointReader(SqlitePointReader):
    """:class:`SqlitePointReader` whose reads are each one statement span (tracing on)."""

    __slots__ = ("_spans",)

    def __init__(self, uri: str, sql: str, spans: StatementSpans) -> None:
        super().__init__(uri, sql)
        self._spans = spans

    def read(self, model_id: str) -> Sequence[Any] | None:
        with self._spans.span(self._sql):
            return super().read(model_id)


class TracedPgPointReader(PgPointReader):
    """:class:`PgPointReader` whose statement runs are each one statement span (tracing on); a run that
    fails (the get then takes the ordinary path, with a span of its own) says so in
    ``hq.point_read.served``."""

    __slots__ = ("_spans",)

    def __init__(
        self,
        connect_kwargs: dict[str, Any],
        sql: str,
        model: Callable[[Any], Model],
        fallback: Callable[[str], Awaitable[Model | None]],
        spans: StatementSpans,
    ) -> None:
        super().__init__(connect_kwargs, sql, model, fallback)
        self._spans = spans

    def _statement_call(self, conn: Any, stmt: Any) -> StatementCall:
        call, span_of, sql = statement_call(conn, stmt), self._spans.span, self._sql

        async def traced(
            args: tuple[Any, ...], portal: str, limit: int, extra: bool, timeout: float | None
        ) -> list[Any] | None:
            with span_of(sql) as span:
                try:
                    rows = await call(args, portal, limit, extra, timeout)
                except Exception:
                    span.set_attribute("hq.point_read.served", False)
                    raise
                span.set_attribute("hq.point_read.served", True)
                return rows

        return traced
