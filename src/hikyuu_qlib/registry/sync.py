"""The sync facade: the same registry through a real blocking path (``sqlite3`` or psycopg 3).

For scripts, notebooks, the CLI and the latency-bound work. It does not wrap the async repository in
an event loop: it has its own SQLAlchemy sync engine and pool over the same schema, statements,
retries and cursors (a cursor from one works with the other). Statements are built and compiled by
SQLAlchemy once and run on the pooled DBAPI connection (see :mod:`hikyuu_qlib.registry.driver`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import sqlalchemy as sa

from hikyuu_qlib.domain.errors import IllegalTransitionError
from hikyuu_qlib.domain.model import Model, ModelStatus
from hikyuu_qlib.domain.queries import ModelFilter, ModelOrder, Page
from hikyuu_qlib.observability.operations import observed
from hikyuu_qlib.observability.statements import TracedCursor
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.registry import migrate, writes
from hikyuu_qlib.registry import query as statements
from hikyuu_qlib.registry.base import CURSOR_KEY_STATEMENT, RegistryCore, not_found
from hikyuu_qlib.registry.checkpoint import WalCheckpointer
from hikyuu_qlib.registry.codec import to_micros, with_version
from hikyuu_qlib.registry.cursor import CursorCodec
from hikyuu_qlib.registry.driver import RowCodec, compile_statement, ids_condition, ids_param
from hikyuu_qlib.registry.engine import (
    SCAN_BEGIN,
    SCAN_END,
    WRITE,
    RegistryOptions,
    create_sync_registry_engine,
)
from hikyuu_qlib.registry.retry import (
    CommitInDoubt,
    RetryPolicy,
    is_connection_lost,
    leaves_connection_usable,
    retry_sync,
)
from hikyuu_qlib.registry.tables import COLUMNS, models

T = TypeVar("T")
Cursor = Any  # a DBAPI cursor (sqlite3 or psycopg)


class ModelRegistry:
    """Models in a SQLite file or PostgreSQL, blocking. Same operations as the async repository."""

    def __init__(
        self, url: str, options: RegistryOptions | None = None, *, telemetry: Telemetry | None = None
    ) -> None:
        self._core = RegistryCore(url, options, telemetry)
        self._observer = self._core.observer
        self._rows = RowCodec(self._core.backend)
        self._engine: sa.Engine | None = None
        self._sql: dict[str, str] = {}
        self._checkpointer: WalCheckpointer | None = None
        self._defaults: dict[str, dict[str, Any]] = {}

    @property
    def backend(self) -> str:
        return self._core.backend

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            raise RuntimeError("the registry is not open: use `with` or call open()")
        return self._engine

    @property
    def cursors(self) -> CursorCodec:
        """The registry's signer of page tokens (its own secret): other keyset pages over the same
        database (jobs, the service's lists) sign theirs with it too."""
        return self._core.cursors

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._core.policy

    # --- lifecycle ----------------------------------------------------------------------------------

    @observed("open")
    def open(self) -> Self:
        """Create the engine and pool, apply migrations, load the cursor key, compile the statements."""
        if self._engine is not None:
            return self
        _, engine = create_sync_registry_engine(self._core.url, self._core.options)
        self._engine = engine
        self._core.telemetry.tracing.instrument_engine(engine)
        try:
            writer = engine.execution_options(**WRITE)

            def upgrade() -> None:
                with writer.begin() as conn:
                    migrate.upgrade(conn, create=self._core.options.create, where=self._core.where)

            retry_sync(upgrade, self._core.policy)
            self._compile(engine.dialect)
            self._core.set_cursor_key(self._run(lambda cur: self._scalar(cur, "cursor_key"), write=False))
            self._checkpointer = self._core.checkpointer()
        except BaseException:
            self.close()
            raise
        return self

    def _compile(self, dialect: sa.Dialect) -> None:
        select_all = f"SELECT {', '.join(COLUMNS)} FROM models"
        backend = self._core.backend
        compiled = {
            "upsert": compile_statement(self._core.upsert_one, dialect),
            "get": compile_statement(self._core.get_one, dialect),
            "cursor_key": compile_statement(CURSOR_KEY_STATEMENT, dialect),
        }
        if self._core.upsert_many is not None:
            compiled["upsert_many"] = compile_statement(self._core.upsert_many, dialect)
        self._sql = {name: c.sql for name, c in compiled.items()}
        # constants bound in the statements (e.g. coalesce(max(version), 0) + 1)
        self._defaults = {
            name: {k: v for k, v in c.params.items() if v is not None} for name, c in compiled.items()
        }
        self._sql["get_many"] = f"{select_all} WHERE {ids_condition(backend)}"
        self._sql["delete_many"] = f"DELETE FROM models WHERE {ids_condition(backend)}"

    def close(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- transactions -------------------------------------------------------------------------------

    def _run(
        self,
        work: Callable[[Cursor], T],
        *,
        write: bool,
        scan: bool = False,
        confirm: Callable[[T], T | None] | None = None,
    ) -> T:
        """One transaction on a pooled connection, retried as a whole on transient faults.

        Reads run in autocommit (each is one statement with its own snapshot); SQLite writes take the
        write lock up front (``BEGIN IMMEDIATE``), so they wait on the busy timeout instead of failing.
        A ``scan`` on SQLite reads outside the memory map (see :data:`~.engine.SCAN_BEGIN`).
        A write whose connection is lost during COMMIT is settled by ``confirm`` (see :mod:`~.retry`).
        """
        engine = self.engine
        sqlite = self._core.backend == "sqlite"
        scan = scan and sqlite
        spans = self._core.statement_spans

        def attempt() -> T:
            raw = engine.raw_connection()
            autocommit = not write and not sqlite
            committing, result = False, None
            try:
                if autocommit:  # a PostgreSQL read: one round trip, no BEGIN/COMMIT
                    raw.driver_connection.autocommit = True  # type: ignore[union-attr]
                cursor = raw.cursor() if spans is None else TracedCursor(raw.cursor(), spans)
                if scan:
                    cursor.execute(SCAN_BEGIN)
                if write and sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                result = work(cursor)
                if write:
                    committing = True
                    raw.commit()
                if scan:
                    cursor.execute(SCAN_END)
                return result
            except BaseException as error:
                if not leaves_connection_usable(error) or scan:  # lost, broken, interrupted, or left
                    raw.invalidate(error if isinstance(error, Exception) else None)  # unmapped: replace
                else:
                    try:
                        raw.rollback()
                    except Exception:
                        raw.invalidate()
                if committing and is_connection_lost(error):
                    raise CommitInDoubt(result) from error
                raise
            finally:
                if autocommit and raw.is_valid:
                    raw.driver_connection.autocommit = False  # type: ignore[union-attr]
                raw.close()

        return retry_sync(attempt, self._core.policy, confirm)

    def _scalar(self, cursor: Cursor, name: str, params: dict[str, Any] | None = None) -> Any:
        defaults = self._defaults.get(name)
        cursor.execute(self._sql[name], {**defaults, **(params or {})} if defaults else (params or {}))
        row = cursor.fetchone()
        return None if row is None else row[0]

    # --- writes -------------------------------------------------------------------------------------

    @observed("save")
    def save(self, model: Model) -> Model:
        """Insert or update one model: one upsert statement (no SELECT first), and on SQLite the
        model's tag-index rows, in one transaction; returns the model with its version."""
        params = self._rows.params(model)
        sqlite = self._core.backend == "sqlite"
        upsert, defaults = self._sql["upsert"], self._defaults["upsert"]

        def work(cur: Cursor) -> Any:
            cur.execute(upsert, {**defaults, **params})
            row = cur.fetchone()
            if sqlite:
                for sql, args in writes.sqlite_tag_steps(model, params["tags"], bool(row[1])):
                    cur.execute(sql, args)
            return row[0]

        def confirm(version: Any) -> Any:
            stored = self.find_by_id(model.id)
            return stored.version if stored is not None and self._core.saved(stored, model) else None

        return with_version(model, int(self._run(work, write=True, confirm=confirm)))

    @observed("save_many")
    def save_many(self, items: Sequence[Model]) -> list[Model]:
        """Upsert many models in one transaction (one multi-row statement per chunk): all or nothing."""
        chunks = writes.chunks(items, self._core.backend)
        if not chunks:
            return []
        pg_sql = self._sql.get("upsert_many", "")

        def work(cur: Cursor) -> list[tuple[str, int]]:
            out: list[tuple[str, int]] = []
            for chunk in chunks:
                cur.execute(chunk.sql or pg_sql, chunk.params)
                out.extend((r[0], r[1]) for r in cur.fetchall())
                for sql, args in chunk.tag_steps:
                    cur.execute(sql, args)
            return out

        def confirm(done: list[tuple[str, int]]) -> list[tuple[str, int]] | None:
            stored = {m.id: m for m in self.get_many([m.id for c in chunks for m in c.models])}
            return (
                done if all(self._core.saved(stored.get(m.id), m) for c in chunks for m in c.models) else None
            )

        done = self._run(work, write=True, confirm=confirm)
        return self._core.with_versions([m for c in chunks for m in c.models], done)

    def delete(self, model_id: str) -> bool:
        """Delete one model; ``False`` when there was none."""
        return self.delete_many([model_id]) == 1

    @observed("delete")
    def delete_many(self, ids: Iterable[str]) -> int:
        """Delete models by id in one transaction; returns how many existed."""
        wanted = self._core.check_ids(ids)
        if not wanted:
            return 0
        backend, sql = self._core.backend, self._sql["delete_many"]

        def work(cur: Cursor) -> int:
            total = 0
            for i in range(0, len(wanted), statements.CHUNK):
                cur.execute(sql, {"ids": ids_param(backend, wanted[i : i + statements.CHUNK])})
                total += cur.rowcount
            return total

        def confirm(total: int) -> int | None:
            return None if self.get_many(wanted) else total

        return self._run(work, write=True, confirm=confirm)

    @observed("transition")
    def transition(self, model_id: str, target: ModelStatus | str) -> Model:
        """Move a model to ``target`` if the lifecycle allows it (compare-and-set on the status)."""
        for _ in range(self._core.policy.attempts):
            current = self.get(model_id)
            changed = current.transition(target)
            stmt = (
                sa.update(models)
                .where(models.c.id == changed.id, models.c.status == current.status.value)
                .values(status=changed.status.value, updated_at=to_micros(changed.updated_at))
            )
            compiled = compile_statement(stmt, self.engine.dialect)

            def work(cur: Cursor, c: Any = compiled) -> int:
                cur.execute(c.sql, c.params)
                return int(cur.rowcount)

            def confirm(count: int, want: Model = changed) -> int | None:
                stored = self.find_by_id(want.id)
                done = stored is not None and (stored.status, stored.updated_at) == (
                    want.status,
                    want.updated_at,
                )
                return count if done else None

            if self._run(work, write=True, confirm=confirm) == 1:
                return changed
        raise IllegalTransitionError(f"model {model_id} kept changing status; try again")

    # --- reads --------------------------------------------------------------------------------------

    @observed("get")
    def find_by_id(self, model_id: str) -> Model | None:
        """The model with this id, or ``None``."""
        sql = self._sql["get"]

        def work(cur: Cursor) -> Any:
            cur.execute(sql, {"id": model_id})
            return cur.fetchone()

        row = self._run(work, write=False)
        return None if row is None else self._rows.model(row)

    def get(self, model_id: str) -> Model:
        """The model with this id, or :class:`ModelNotFoundError`."""
        found = self.find_by_id(model_id)
        if found is None:
            raise not_found(model_id)
        return found

    @observed("get_many")
    def get_many(self, ids: Iterable[str]) -> list[Model]:
        """The models with these ids, in the order asked; unknown ids are left out."""
        wanted = self._core.check_ids(ids)
        unique = list(dict.fromkeys(wanted))
        if not unique:
            return []
        backend, sql = self._core.backend, self._sql["get_many"]

        def work(cur: Cursor) -> list[Any]:
            rows: list[Any] = []
            for i in range(0, len(unique), statements.CHUNK):
                cur.execute(sql, {"ids": ids_param(backend, unique[i : i + statements.CHUNK])})
                rows.extend(cur.fetchall())
            return rows

        found = {m.id: m for m in map(self._rows.model, self._run(work, write=False))}
        return [found[i] for i in wanted if i in found]

    def _select(self, stmt: sa.Select[Any], *, scan: bool = False) -> list[Any]:
        compiled = compile_statement(stmt, self.engine.dialect)

        def work(cur: Cursor) -> list[Any]:
            cur.execute(compiled.sql, compiled.params)
            return list(cur.fetchall())

        return self._run(work, write=False, scan=scan)

    def find(
        self,
        flt: ModelFilter | None = None,
        *,
        order: ModelOrder | str = ModelOrder.CREATED,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Model]:
        """One keyset page of matching models and the cursor of the next page."""
        return self._find(flt, order, limit, cursor, scan=False)

    @observed("find")
    def _find(
        self, flt: ModelFilter | None, order: ModelOrder | str, limit: int, cursor: str | None, *, scan: bool
    ) -> Page[Model]:
        flt = flt or ModelFilter()
        order = ModelOrder.parse(order)
        limit = self._core.check_limit(limit)
        stmt = statements.find_statement(
            flt, order, self._core.after(cursor, order, flt), limit + 1, self._core.backend
        )
        return self._core.page(self._select(stmt, scan=scan), order, flt, limit, self._rows.model)

    def iterate(
        self,
        flt: ModelFilter | None = None,
        *,
        order: ModelOrder | str = ModelOrder.CREATED,
        batch: int = 1000,
    ) -> Iterator[Model]:
        """Every matching model, fetched ``batch`` at a time by keyset (memory stays flat: the pages are
        read outside SQLite's memory map)."""
        cursor: str | None = None
        while True:
            page = self._find(flt, order, batch, cursor, scan=True)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    @observed("count")
    def count(self, flt: ModelFilter | None = None) -> int:
        return int(self._select(statements.count_statement(flt or ModelFilter(), self._core.backend))[0][0])

    @observed("resolve")
    def resolve(self, prefix: str) -> str:
        """The whole id of the one model whose id starts with ``prefix`` (case-insensitive)."""
        rows = self._select(statements.prefix_statement(self._core.normalise_prefix(prefix)))
        return self._core.resolved(prefix, [r[0] for r in rows])
