"""The async model repository: SQLAlchemy 2 async Core over aiosqlite or asyncpg.

Use it as an async context manager (``async with AsyncModelRepository(url) as repo``) or call
``open()``/``close()``. Opening applies the migrations. Every operation is one short transaction, retried
as a whole on transient faults (:mod:`hikyuu_qlib.registry.retry`). ``get`` calls that arrive in the
same event-loop turn are served by one ``get_many`` query (see :class:`GetBatcher`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hikyuu_qlib.domain.errors import IllegalTransitionError
from hikyuu_qlib.domain.model import Model, ModelStatus
from hikyuu_qlib.registry import migrate
from hikyuu_qlib.registry import query as q
from hikyuu_qlib.registry.base import CURSOR_KEY_STATEMENT, RegistryCore, not_found
from hikyuu_qlib.registry.codec import from_row, to_row, with_version
from hikyuu_qlib.registry.engine import WRITE, RegistryOptions, create_async_registry_engine
from hikyuu_qlib.registry.retry import retry_async
from hikyuu_qlib.registry.tables import models

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

    def __init__(self, url: str, options: RegistryOptions | None = None) -> None:
        self._core = RegistryCore(url, options)
        self._engine: AsyncEngine | None = None
        self._writer: AsyncEngine | None = None
        self._batcher = GetBatcher(self._fetch_many)

    @property
    def backend(self) -> str:
        return self._core.backend

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the registry is not open: use `async with` or call open()")
        return self._engine

    # --- lifecycle ----------------------------------------------------------------------------------

    async def open(self) -> Self:
        """Create the engine and pool, apply migrations, load the cursor key."""
        if self._engine is not None:
            return self
        _, engine = create_async_registry_engine(self._core.url, self._core.options)
        self._engine, self._writer = engine, engine.execution_options(**WRITE)
        try:
            await self._write(lambda conn: conn.run_sync(migrate.upgrade))
            key = await self._read(lambda conn: _scalar(conn, CURSOR_KEY_STATEMENT))
            self._core.set_cursor_key(key)
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        engine, self._engine, self._writer = self._engine, None, None
        if engine is not None:
            await engine.dispose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # --- transactions -------------------------------------------------------------------------------

    async def _read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async def attempt() -> T:
            async with self.engine.connect() as conn:
                return await work(conn)

        return await retry_async(attempt, self._core.policy)

    async def _write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async def attempt() -> T:
            assert self._writer is not None
            async with self._writer.begin() as conn:
                return await work(conn)

        if self._writer is None:
            raise RuntimeError("the registry is not open: use `async with` or call open()")
        return await retry_async(attempt, self._core.policy)

    # --- writes -------------------------------------------------------------------------------------

    async def save(self, model: Model) -> Model:
        """Insert or update one model in one upsert statement; returns it with its version."""
        params = self._core.save_params(model)

        async def work(conn: AsyncConnection) -> int:
            return int((await conn.execute(self._core.upsert_one, params)).scalar_one())

        version = await self._write(work)
        return with_version(model, version)

    async def save_many(self, items: Sequence[Model]) -> list[Model]:
        """Upsert many models in one transaction (one multi-row statement per chunk): all or nothing."""
        chunks = self._core.chunks(items)
        if not chunks:
            return []

        async def work(conn: AsyncConnection) -> list[tuple[str, int]]:
            out: list[tuple[str, int]] = []
            for _, params in chunks:
                out.extend((r[0], r[1]) for r in await conn.execute(self._core.upsert_many, params))
            return out

        versions = await self._write(work)
        return self._core.with_versions([m for part, _ in chunks for m in part], versions)

    async def delete(self, model_id: str) -> bool:
        """Delete one model; ``False`` when there was none."""
        return await self.delete_many([model_id]) == 1

    async def delete_many(self, ids: Iterable[str]) -> int:
        """Delete models by id in one transaction; returns how many existed."""
        wanted = self._core.check_ids(ids)
        if not wanted:
            return 0

        async def work(conn: AsyncConnection) -> int:
            total = 0
            for start in range(0, len(wanted), q.CHUNK):
                result = await conn.execute(self._core.delete_many, {"ids": wanted[start:start + q.CHUNK]})
                total += result.rowcount
            return total

        return await self._write(work)

    async def transition(self, model_id: str, target: ModelStatus | str) -> Model:
        """Move a model to ``target`` if the lifecycle allows it (compare-and-set on the status)."""
        for _ in range(self._core.policy.attempts):
            current = await self.get(model_id)
            changed = current.transition(target)
            stmt = (sa.update(models).where(models.c.id == changed.id, models.c.status == current.status.value)
                    .values(status=changed.status.value, updated_at=to_row(changed)["updated_at"]))

            async def work(conn: AsyncConnection, stmt: sa.Update = stmt) -> int:
                return (await conn.execute(stmt)).rowcount

            if await self._write(work) == 1:
                return changed
        raise IllegalTransitionError(f"model {model_id} kept changing status; try again")

    # --- reads --------------------------------------------------------------------------------------

    async def _fetch_many(self, ids: list[str]) -> dict[str, Model]:
        async def work(conn: AsyncConnection) -> dict[str, Model]:
            found: dict[str, Model] = {}
            for start in range(0, len(ids), q.CHUNK):
                result = await conn.execute(self._core.get_many, {"ids": ids[start:start + q.CHUNK]})
                for row in result:
                    found[row[0]] = from_row(row)
            return found

        if len(ids) == 1:
            async def one(conn: AsyncConnection) -> dict[str, Model]:
                row = (await conn.execute(self._core.get_one, {"id": ids[0]})).first()
                return {} if row is None else {row[0]: from_row(row)}

            return await self._read(one)
        return await self._read(work)

    async def find_by_id(self, model_id: str) -> Model | None:
        """The model with this id, or ``None``."""
        return await self._batcher.load(model_id)

    async def get(self, model_id: str) -> Model:
        """The model with this id, or :class:`ModelNotFoundError`."""
        found = await self._batcher.load(model_id)
        if found is None:
            raise not_found(model_id)
        return found

    async def get_many(self, ids: Iterable[str]) -> list[Model]:
        """The models with these ids, in the order asked; unknown ids are left out."""
        wanted = self._core.check_ids(ids)
        if not wanted:
            return []
        found = await self._fetch_many(list(dict.fromkeys(wanted)))
        return [found[i] for i in wanted if i in found]

    async def find(self, flt: q.ModelFilter | None = None, *, order: q.ModelOrder | str = q.ModelOrder.CREATED,
                   limit: int = 100, cursor: str | None = None) -> q.Page[Model]:
        """One keyset page of matching models and the cursor of the next page."""
        flt = flt or q.ModelFilter()
        order = q.ModelOrder.parse(order)
        limit = self._core.check_limit(limit)
        after = self._core.after(cursor, order, flt)
        stmt = q.find_statement(flt, order, after, limit + 1, self._core.backend)

        async def work(conn: AsyncConnection) -> list[Any]:
            return list((await conn.execute(stmt)).all())

        return self._core.page(await self._read(work), order, flt, limit)

    async def iterate(self, flt: q.ModelFilter | None = None, *, order: q.ModelOrder | str = q.ModelOrder.CREATED,
                      batch: int = 1000) -> AsyncIterator[Model]:
        """Every matching model, fetched ``batch`` at a time by keyset (memory stays flat)."""
        cursor: str | None = None
        while True:
            page = await self.find(flt, order=order, limit=batch, cursor=cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def count(self, flt: q.ModelFilter | None = None) -> int:
        stmt = q.count_statement(flt or q.ModelFilter(), self._core.backend)

        async def work(conn: AsyncConnection) -> int:
            return int((await conn.execute(stmt)).scalar_one())

        return await self._read(work)

    async def resolve(self, prefix: str) -> str:
        """The whole id of the one model whose id starts with ``prefix`` (case-insensitive)."""
        text = self._core.normalise_prefix(prefix)
        stmt = q.prefix_statement(text)

        async def work(conn: AsyncConnection) -> list[str]:
            return [r[0] for r in await conn.execute(stmt)]

        return self._core.resolved(prefix, await self._read(work))


async def _scalar(conn: AsyncConnection, stmt: sa.Select[Any]) -> Any:
    return (await conn.execute(stmt)).scalar()
