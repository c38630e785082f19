"""The async model repository: SQLAlchemy 2 async Core over aiosqlite or asyncpg.

Use it as an async context manager (``async with AsyncModelRepository(url) as repo``) or call
``open()``/``close()``. Opening applies the migrations (through an SQLAlchemy async connection).
SQLAlchemy builds and compiles every statement and owns the async pool; operations run the compiled SQL
on the pooled driver connection (:mod:`hikyuu_qlib.registry.async_driver`). Every operation is one short
transaction, retried as a whole on transient faults (:mod:`hikyuu_qlib.registry.retry`); a connection
found dead is invalidated so the pool replaces it. A single ``get`` goes straight to the database
(:mod:`hikyuu_qlib.registry.point_reads`); ``get`` calls that arrive while that path is busy, in the same
event-loop turn, are served by one ``get_many`` query (see :class:`GetBatcher`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from time import perf_counter
from types import TracebackType
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hikyuu_qlib.domain.errors import IllegalTransitionError
from hikyuu_qlib.domain.model import Model, ModelStatus
from hikyuu_qlib.domain.queries import ModelFilter, ModelOrder, Page
from hikyuu_qlib.observability.operations import observed_async
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.registry import migrate, writes
from hikyuu_qlib.registry import query as statements
from hikyuu_qlib.registry.async_driver import AsyncDriver, Positional, TracedAsyncDriver
from hikyuu_qlib.registry.base import CURSOR_KEY_STATEMENT, RegistryCore, not_found
from hikyuu_qlib.registry.checkpoint import WalCheckpointer
from hikyuu_qlib.registry.codec import to_micros, with_version
from hikyuu_qlib.registry.cursor import CursorCodec
from hikyuu_qlib.registry.driver import RowCodec, ids_condition, ids_param
from hikyuu_qlib.registry.engine import (
    SCAN_BEGIN,
    SCAN_END,
    WRITE,
    RegistryOptions,
    asyncpg_connect_kwargs,
    create_async_registry_engine,
    sqlite_uri,
)
from hikyuu_qlib.registry.point_reads import (
    YIELD_EVERY,
    PgPointReader,
    SqlitePointReader,
    TracedPgPointReader,
    TracedSqlitePointReader,
)
from hikyuu_qlib.registry.retry import (
    CommitInDoubt,
    is_connection_lost,
    leaves_connection_usable,
    retry_async,
)
from hikyuu_qlib.registry.tables import COLUMNS, models

T = TypeVar("T")


class GetBatcher:
    """Coalesces concurrent ``get`` calls into one ``get_many`` (the DataLoader pattern)."""

    def __init__(self, fetch: Callable[[list[str]], Awaitable[dict[str, Model]]]) -> None:
        self._fetch = fetch
        self._pending: dict[str, list[asyncio.Future[Model | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def load(self, model_id: str) -> asyncio.Future[Model | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Model | None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._dispatch)
        self._pending.setdefault(model_id, []).append(future)
        return future

    def _dispatch(self) -> None:
        batch, self._pending = self._pending, {}
        task = asyncio.ensure_future(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: dict[str, list[asyncio.Future[Model | None]]]) -> None:
        try:
            found = await self._fetch(list(batch))
        except BaseException as error:
            for futures in batch.values():
                for f in futures:
                    if not f.done():
                        f.set_exception(error)
            return
        for model_id, futures in batch.items():
            for f in futures:
                if not f.done():
                    f.set_result(found.get(model_id))


class AsyncModelRepository:
    """Models in a SQLite file or PostgreSQL, asynchronously."""

    def __init__(
        self, url: str, options: RegistryOptions | None = None, *, telemetry: Telemetry | None = None
    ) -> None:
        self._core = RegistryCore(url, options, telemetry)
        self._observer = self._core.observer
        self._rows = RowCodec(self._core.backend)
        self._engine: AsyncEngine | None = None
        self._sql: dict[str, Positional] = {}
        self._checkpointer: WalCheckpointer | None = None
        self._batcher = GetBatcher(self._fetch_many)
        self._sqlite_reader: SqlitePointReader | None = None
        self._pg_reader: PgPointReader | None = None
        # how a single get looks a record up: straight to the database once open (_open_point_reader)
        self._lookup: Callable[[str], Awaitable[Model | None]] = self._batcher.load
        # the get's recorder, bound once (metrics without tracing; else None: see find_by_id)
        observer = self._observer
        self._get_timer = None if observer is None or observer.traced else observer.timer("get")

    @property
    def backend(self) -> str:
        return self._core.backend

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the registry is not open: use `async with` or call open()")
        return self._engine

    @property
    def cursors(self) -> CursorCodec:
        """The registry's signer of page tokens (see :attr:`ModelRegistry.cursors`)."""
        return self._core.cursors

    # --- lifecycle ----------------------------------------------------------------------------------

    @observed_async("open")
    async def open(self) -> Self:
        """Create the engine and pool, apply migrations, compile the statements, load the cursor key."""
        if self._engine is not None:
            return self
        _, engine = create_async_registry_engine(self._core.url, self._core.options)
        self._engine = engine
        self._core.telemetry.tracing.instrument_engine(engine)
        try:
            writer = engine.execution_options(**WRITE)

            options = self._core.options

            def upgrade_sync(conn: sa.Connection) -> None:
                migrate.upgrade(conn, create=options.create, where=self._core.where)

            async def upgrade() -> None:
                async with writer.begin() as conn:
                    await conn.run_sync(upgrade_sync)

            await retry_async(upgrade, self._core.policy)
            self._compile(engine.dialect)
            rows = await self._run(lambda d: d.fetch(self._sql["cursor_key"]), write=False)
            self._core.set_cursor_key(rows[0][0] if rows else None)
            self._checkpointer = self._core.checkpointer()
            self._open_point_reader(engine)
        except BaseException:
            await self.close()
            raise
        return self

    def _open_point_reader(self, engine: AsyncEngine) -> None:
        get_sql, spans = self._sql["get"].sql, self._core.statement_spans
        if self._core.sqlite_path is not None:
            uri = sqlite_uri(self._core.sqlite_path, create=False)
            self._sqlite_reader = (
                SqlitePointReader(uri, get_sql)
                if spans is None
                else TracedSqlitePointReader(uri, get_sql, spans)
            )
            self._lookup = self._sqlite_lookup
        else:
            kwargs, model = asyncpg_connect_kwargs(engine, self._core.options), self._rows.model
            pg_reader = self._pg_reader = (
                PgPointReader(kwargs, get_sql, model, self._batcher.load)
                if spans is None
                else TracedPgPointReader(kwargs, get_sql, model, self._batcher.load, spans)
            )
            self._lookup = pg_reader.get  # awaits the protocol call itself: one frame less per get

    def _compile(self, dialect: sa.Dialect) -> None:
        backend = self._core.backend
        select_all = sa.select(models)
        many = (
            sa.text(f"SELECT {', '.join(COLUMNS)} FROM models WHERE {ids_condition(backend)}")
            if backend == "sqlite"
            else select_all.where(models.c.id == sa.func.any(sa.bindparam("ids")))
        )
        delete = (
            sa.text(f"DELETE FROM models WHERE {ids_condition(backend)}")
            if backend == "sqlite"
            else sa.delete(models).where(models.c.id == sa.func.any(sa.bindparam("ids")))
        )
        self._sql = {
            "upsert": Positional.compile(self._core.upsert_one, dialect),
            "get": Positional.compile(self._core.get_one, dialect),
            "get_many": Positional.compile(many, dialect),
            "delete_many": Positional.compile(delete, dialect),
            "cursor_key": Positional.compile(CURSOR_KEY_STATEMENT, dialect),
        }
        if self._core.upsert_many is not None:
            self._sql["upsert_many"] = Positional.compile(self._core.upsert_many, dialect)

    async def close(self) -> None:
        self._lookup = self._batcher.load
        sqlite_reader, self._sqlite_reader = self._sqlite_reader, None
        if sqlite_reader is not None:
            sqlite_reader.close()
        pg_reader, self._pg_reader = self._pg_reader, None
        if pg_reader is not None:
            await pg_reader.close()
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.stop)
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- transactions -------------------------------------------------------------------------------

    async def _run(
        self,
        work: Callable[[AsyncDriver], Awaitable[T]],
        *,
        write: bool,
        scan: bool = False,
        confirm: Callable[[T], Awaitable[T | None]] | None = None,
    ) -> T:
        """One transaction (reads: one autocommit statement) on a pooled connection, retried whole. A
        ``scan`` on SQLite reads outside the memory map (see :data:`~.engine.SCAN_BEGIN`). A write whose
        connection is lost during COMMIT is settled by ``confirm`` (see :mod:`~.retry`)."""
        engine, backend = self.engine, self._core.backend
        scan = scan and backend == "sqlite"
        spans = self._core.statement_spans

        async def attempt() -> T:
            async with engine.connect() as conn:
                raw = await conn.get_raw_connection()
                driver = (
                    AsyncDriver(raw.driver_connection, backend)
                    if spans is None
                    else TracedAsyncDriver(raw.driver_connection, backend, spans)
                )
                committing, result = False, None
                try:
                    if scan:
                        await driver.execute_sql(SCAN_BEGIN, ())
                    if write:
                        await driver.begin()
                    result = await work(driver)
                    if write:
                        committing = True
                        await driver.commit()
                    if scan:
                        await driver.execute_sql(SCAN_END, ())
                    return result
                except BaseException as error:
                    if not leaves_connection_usable(error) or scan:  # lost, broken, interrupted, or
                        await conn.invalidate(error if isinstance(error, Exception) else None)  # unmapped
                    elif write:
                        try:
                            await driver.rollback()
                        except Exception:
                            await conn.invalidate()
                    if committing and is_connection_lost(error):
                        raise CommitInDoubt(result) from error
                    raise

        return await retry_async(attempt, self._core.policy, confirm)

    # --- writes -------------------------------------------------------------------------------------

    @observed_async("save")
    async def save(self, model: Model) -> Model:
        """Insert or update one model: one upsert statement (no SELECT first), and on SQLite the
        model's tag-index rows, in one transaction; returns the model with its version."""
        params = self._rows.params(model)
        stmt = self._sql["upsert"]
        sqlite = self._core.backend == "sqlite"

        async def work(d: AsyncDriver) -> int:
            rows = await d.fetch(stmt, params)
            if sqlite:
                for sql, args in writes.sqlite_tag_steps(model, params["tags"], bool(rows[0][1])):
                    await d.execute_sql(sql, args)
            return int(rows[0][0])

        async def confirm(version: int) -> int | None:
            stored = await self.find_by_id(model.id)
            return stored.version if stored is not None and self._core.saved(stored, model) else None

        return with_version(model, await self._run(work, write=True, confirm=confirm))

    @observed_async("save_many")
    async def save_many(self, items: Sequence[Model]) -> list[Model]:
        """Upsert many models in one transaction (one multi-row statement per chunk): all or nothing."""
        chunks = writes.chunks(items, self._core.backend)
        if not chunks:
            return []
        pg_stmt = self._sql.get("upsert_many")

        async def work(d: AsyncDriver) -> list[tuple[str, int]]:
            out: list[tuple[str, int]] = []
            for chunk in chunks:
                if chunk.sql is None:
                    assert pg_stmt is not None
                    out.extend((r[0], r[1]) for r in await d.fetch(pg_stmt, chunk.params))
                    continue
                out.extend((r[0], r[1]) for r in await d.fetch_sql(chunk.sql, chunk.params))
                for sql, args in chunk.tag_steps:
                    await d.execute_sql(sql, args)
            return out

        async def confirm(done: list[tuple[str, int]]) -> list[tuple[str, int]] | None:
            stored = {m.id: m for m in await self.get_many([m.id for c in chunks for m in c.models])}
            return (
                done if all(self._core.saved(stored.get(m.id), m) for c in chunks for m in c.models) else None
            )

        versions = await self._run(work, write=True, confirm=confirm)
        return self._core.with_versions([m for c in chunks for m in c.models], versions)

    async def delete(self, model_id: str) -> bool:
        """Delete one model; ``False`` when there was none."""
        return await self.delete_many([model_id]) == 1

    @observed_async("delete")
    async def delete_many(self, ids: Iterable[str]) -> int:
        """Delete models by id in one transaction; returns how many existed."""
        wanted = self._core.check_ids(ids)
        if not wanted:
            return 0
        backend, stmt = self._core.backend, self._sql["delete_many"]

        async def work(d: AsyncDriver) -> int:
            total = 0
            for i in range(0, len(wanted), statements.CHUNK):
                total += await d.execute(stmt, {"ids": ids_param(backend, wanted[i : i + statements.CHUNK])})
            return total

        async def confirm(total: int) -> int | None:
            return None if await self.get_many(wanted) else total

        return await self._run(work, write=True, confirm=confirm)

    @observed_async("transition")
    async def transition(self, model_id: str, target: ModelStatus | str) -> Model:
        """Move a model to ``target`` if the lifecycle allows it (compare-and-set on the status)."""
        for _ in range(self._core.policy.attempts):
            current = await self.get(model_id)
            changed = current.transition(target)
            update = (
                sa.update(models)
                .where(models.c.id == changed.id, models.c.status == current.status.value)
                .values(status=changed.status.value, updated_at=to_micros(changed.updated_at))
            )
            stmt = Positional.compile(update, self.engine.dialect)

            async def confirm(count: int, want: Model = changed) -> int | None:
                stored = await self.find_by_id(want.id)
                done = stored is not None and (stored.status, stored.updated_at) == (
                    want.status,
                    want.updated_at,
                )
                return count if done else None

            changed_rows = await self._run(
                lambda d, s=stmt: d.execute(s),  # type: ignore[misc]
                write=True,
                confirm=confirm,
            )
            if changed_rows == 1:
                return changed
        raise IllegalTransitionError(f"model {model_id} kept changing status; try again")

    # --- reads --------------------------------------------------------------------------------------

    async def _fetch_many(self, ids: list[str]) -> dict[str, Model]:
        backend = self._core.backend
        if len(ids) == 1:
            stmt = self._sql["get"]
            rows = await self._run(lambda d: d.fetch(stmt, {"id": ids[0]}), write=False)
        else:
            stmt = self._sql["get_many"]

            async def work(d: AsyncDriver) -> list[Any]:
                out: list[Any] = []
                for i in range(0, len(ids), statements.CHUNK):
                    out.extend(
                        await d.fetch(stmt, {"ids": ids_param(backend, ids[i : i + statements.CHUNK])})
                    )
                return out

            rows = await self._run(work, write=False)
        return {m.id: m for m in map(self._rows.model, rows)}

    async def find_by_id(self, model_id: str) -> Model | None:
        """The model with this id, or ``None``. Straight to the database when it can (see
        :mod:`~.point_reads`); else, with the gets of the same loop turn, in one query.

        Timed here, not by a decorator (the hot path: no extra coroutine frame): with metrics only, two
        clock reads and one pre-bound observation; traced, through the observer's span."""
        timer = self._get_timer
        if timer is None:
            if self._observer is None:
                return await self._lookup(model_id)
            return await self._observer.acall("get", lambda: self._lookup(model_id))
        started = perf_counter()
        try:
            found = await self._lookup(model_id)
        except BaseException:
            timer.error(perf_counter() - started)
            raise
        timer.ok(perf_counter() - started)
        return found

    async def _sqlite_lookup(self, model_id: str) -> Model | None:
        sqlite_reader = self._sqlite_reader
        if sqlite_reader is None:  # closed
            return await self._batcher.load(model_id)
        try:
            row = sqlite_reader.read(model_id)
        except sqlite3.Error:
            return await self._batcher.load(model_id)
        if sqlite_reader.reads % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a loop of awaited gets lets other tasks run
        return None if row is None else self._rows.model(row)

    async def get(self, model_id: str) -> Model:
        """The model with this id, or :class:`ModelNotFoundError`."""
        # find_by_id's body again, not a call of it: one coroutine frame less on the hot path
        timer = self._get_timer
        if timer is not None:
            started = perf_counter()
            try:
                found = await self._lookup(model_id)
            except BaseException:
                timer.error(perf_counter() - started)
                raise
            timer.ok(perf_counter() - started)
        elif self._observer is None:
            found = await self._lookup(model_id)
        else:
            found = await self._observer.acall("get", lambda: self._lookup(model_id))
        if found is None:
            raise not_found(model_id)
        return found

    @observed_async("get_many")
    async def get_many(self, ids: Iterable[str]) -> list[Model]:
        """The models with these ids, in the order asked; unknown ids are left out."""
        wanted = self._core.check_ids(ids)
        if not wanted:
            return []
        found = await self._fetch_many(list(dict.fromkeys(wanted)))
        return [found[i] for i in wanted if i in found]

    async def _select(self, stmt: sa.Select[Any], *, scan: bool = False) -> list[Any]:
        compiled = Positional.compile(stmt, self.engine.dialect)
        return list(await self._run(lambda d: d.fetch(compiled), write=False, scan=scan))

    async def find(
        self,
        flt: ModelFilter | None = None,
        *,
        order: ModelOrder | str = ModelOrder.CREATED,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Model]:
        """One keyset page of matching models and the cursor of the next page."""
        return await self._find(flt, order, limit, cursor, scan=False)

    @observed_async("find")
    async def _find(
        self, flt: ModelFilter | None, order: ModelOrder | str, limit: int, cursor: str | None, *, scan: bool
    ) -> Page[Model]:
        flt = flt or ModelFilter()
        order = ModelOrder.parse(order)
        limit = self._core.check_limit(limit)
        after = self._core.after(cursor, order, flt)
        rows = await self._select(
            statements.find_statement(flt, order, after, limit + 1, self._core.backend), scan=scan
        )
        return self._core.page(rows, order, flt, limit, self._rows.model)

    async def iterate(
        self,
        flt: ModelFilter | None = None,
        *,
        order: ModelOrder | str = ModelOrder.CREATED,
        batch: int = 1000,
    ) -> AsyncIterator[Model]:
        """Every matching model, fetched ``batch`` at a time by keyset (memory stays flat: the pages are
        read outside SQLite's memory map)."""
        cursor: str | None = None
        while True:
            page = await self._find(flt, order, batch, cursor, scan=True)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    @observed_async("count")
    async def count(self, flt: ModelFilter | None = None) -> int:
        """How many models match."""
        rows = await self._select(statements.count_statement(flt or ModelFilter(), self._core.backend))
        return int(rows[0][0])

    @observed_async("resolve")
    async def resolve(self, prefix: str) -> str:
        """The whole id of the one model whose id starts with ``prefix`` (case-insensitive)."""
        rows = await self._select(statements.prefix_statement(self._core.normalise_prefix(prefix)))
        return self._core.resolved(prefix, [r[0] for r in rows])
