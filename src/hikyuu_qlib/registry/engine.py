"""Registry URL → SQLAlchemy engine (async or sync), with the pool and SQLite pragmas configured.

``sqlite:///PATH`` uses aiosqlite (async) or the standard ``sqlite3`` (sync); ``postgresql://…`` uses asyncpg
(async) or psycopg 3 (sync). SQLite connections run in WAL mode with ``synchronous=NORMAL`` (a commit is
durable once the WAL is checkpointed or at the next fsync; a power cut can lose the last commits but never
corrupts the database; an application crash loses nothing), a busy timeout and foreign keys on.
SQLite write transactions start with ``BEGIN IMMEDIATE`` so that writers queue on the busy timeout
instead of failing when a read transaction would have to be upgraded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.registry.checkpoint import BACKSTOP_PAGES
from hikyuu_qlib.settings import Settings

Backend = Literal["sqlite", "postgresql"]
WRITE = {"hq_write": True}

#: How much of a SQLite registry file point reads see through a memory map: a get among 1 M models
#: touches leaf pages SQLite's own 2 MB cache does not hold, and a mapped page costs no pread and no copy.
MMAP_BYTES = 1 << 30
#: Around a scan (``iterate``), a connection reads outside the map: mapped pages count in the process's
#: resident memory, and a scan would map the whole file into it.
SCAN_BEGIN = "PRAGMA mmap_size=0"
SCAN_END = f"PRAGMA mmap_size={MMAP_BYTES}"


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """Pool, SQLite and retry settings of one registry connection."""

    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 30.0
    pool_pre_ping: bool = True
    pool_recycle: int = 1800
    busy_timeout_ms: int = 5000
    retry_attempts: int = 8
    application_name: str = "hikyuu_qlib"
    schema: str | None = None  # PostgreSQL search_path (tests use one schema each)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RegistryOptions:
        values: dict[str, Any] = {
            "pool_size": settings.registry_pool_size,
            "max_overflow": settings.registry_max_overflow,
            "pool_timeout": settings.registry_pool_timeout,
            "pool_pre_ping": settings.registry_pool_pre_ping,
            "pool_recycle": settings.registry_pool_recycle,
            "busy_timeout_ms": settings.registry_busy_timeout_ms,
            "retry_attempts": settings.registry_retry_attempts,
        }
        values.update(overrides)
        return cls(**values)


def parse_url(url: str) -> tuple[Backend, URL]:
    """Check a registry URL and name its backend; ``InvalidInputError`` for anything else."""
    try:
        parsed = make_url(url)
    except Exception:
        raise InvalidInputError(f"invalid registry URL {url!r}: expected sqlite:///PATH or postgresql://…") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise InvalidInputError(f"invalid registry URL {url!r}: SQLite needs a file, sqlite:///PATH")
        return "sqlite", parsed
    if backend in {"postgresql", "postgres"}:
        return "postgresql", parsed.set(drivername="postgresql")
    raise InvalidInputError(f"unsupported registry URL {url!r}: expected sqlite:///PATH or postgresql://…")


def sqlite_path(url: URL) -> Path:
    return Path(url.database or "").expanduser()


def _driver_url(url: str, *, asynchronous: bool) -> tuple[Backend, URL]:
    backend, parsed = parse_url(url)
    if backend == "sqlite":
        path = sqlite_path(parsed)
        path.parent.mkdir(parents=True, exist_ok=True)
        return backend, parsed.set(drivername="sqlite+aiosqlite" if asynchronous else "sqlite+pysqlite",
                                   database=str(path))
    return backend, parsed.set(drivername="postgresql+asyncpg" if asynchronous else "postgresql+psycopg")


def _engine_kwargs(backend: Backend, options: RegistryOptions, *, asynchronous: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "pool_size": options.pool_size,
        "max_overflow": options.max_overflow,
        "pool_timeout": options.pool_timeout,
        "pool_pre_ping": options.pool_pre_ping,
        "pool_recycle": options.pool_recycle,
        "poolclass": sa.AsyncAdaptedQueuePool if asynchronous else sa.QueuePool,
    }
    if backend == "sqlite" and not asynchronous:
        kwargs["paramstyle"] = "named"  # the sync facade runs compiled SQL with dict parameters
    if backend == "sqlite":
        # isolation_level=None: the driver does not open transactions itself; the "begin" hook below does.
        kwargs["connect_args"] = {"timeout": options.busy_timeout_ms / 1000, "check_same_thread": False,
                                  "isolation_level": None}
        kwargs["pool_pre_ping"] = False  # a local file has no connection to lose
        kwargs["pool_reset_on_return"] = None  # every operation commits or rolls back itself
    elif asynchronous:
        settings = {"application_name": options.application_name}
        if options.schema:
            settings["search_path"] = options.schema
        kwargs["connect_args"] = {"server_settings": settings}
    else:
        connect: dict[str, Any] = {"application_name": options.application_name}
        if options.schema:
            connect["options"] = f"-csearch_path={options.schema}"
        kwargs["connect_args"] = connect
    return kwargs


def _sqlite_hooks(engine: Engine, options: RegistryOptions) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(options.busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # checkpoints run on the registry's background thread (registry.checkpoint); a commit checkpoints
        # by itself only past this backstop
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        cursor.execute(SCAN_END)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("hq_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_async_registry_engine(url: str, options: RegistryOptions) -> tuple[Backend, AsyncEngine]:
    """An async engine (aiosqlite or asyncpg) with the pool configured; no connection is made yet."""
    from sqlalchemy.ext.asyncio import create_async_engine

    backend, driver_url = _driver_url(url, asynchronous=True)
    engine = create_async_engine(driver_url, **_engine_kwargs(backend, options, asynchronous=True))
    if backend == "sqlite":
        _sqlite_hooks(engine.sync_engine, options)
    return backend, engine


def create_sync_registry_engine(url: str, options: RegistryOptions) -> tuple[Backend, Engine]:
    """A sync engine (sqlite3 or psycopg 3) with the pool configured; no connection is made yet."""
    backend, driver_url = _driver_url(url, asynchronous=False)
    engine = sa.create_engine(driver_url, **_engine_kwargs(backend, options, asynchronous=False))
    if backend == "sqlite":
        _sqlite_hooks(engine, options)
    return backend, engine
