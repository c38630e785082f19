"""Registry URL → SQLAlchemy engine (async or sync), with the pool and SQLite pragmas configured.

``sqlite:///PATH`` uses aiosqlite (async) or the standard ``sqlite3`` (sync); ``postgresql://…`` uses asyncpg
(async) or psycopg 3 (sync). SQLite connections run in WAL mode with ``synchronous=NORMAL`` (a commit is
durable once the WAL is checkpointed or at the next fsync; a power cut can lose the last commits but never
corrupts the database; an application crash loses nothing), a busy timeout and foreign keys on.
SQLite write transactions start with ``BEGIN IMMEDIATE`` so that writers queue on the busy timeout
instead of failing when a read transaction would have to be upgraded.

A SQLite URL's path is taken literally: everything after ``sqlite:///`` is the file name, so names with
``#``, ``?``, ``%``, spaces or non-ASCII characters work (there is no query string and no %-escape); the
driver opens it through a ``file:`` URI built with the path escaped. With ``RegistryOptions(create=False)``
(commands that only read) a missing file is a :class:`RegistryNotFoundError` and nothing is created.
URLs in messages have their password masked (:func:`describe`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

from hikyuu_qlib.domain.errors import InvalidInputError, RegistryNotFoundError
from hikyuu_qlib.observability.redact import mask_url
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
    retry_attempts: int = 100
    retry_deadline: float = 30.0  # seconds of transient faults ridden out (see registry.retry)
    connect_timeout: float = 10.0
    application_name: str = "hikyuu_qlib"
    schema: str | None = None  # PostgreSQL search_path (tests use one schema each)
    create: bool = True  # False: the registry must exist already (read-only commands create nothing)

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
            "retry_deadline": settings.registry_retry_deadline,
            "connect_timeout": settings.registry_connect_timeout,
        }
        values.update(overrides)
        return cls(**values)


_SQLITE_URL = re.compile(r"sqlite(?:\+\w+)?:///(?P<path>.*)", re.DOTALL)


def describe(url: str) -> str:
    """The URL as messages and logs show it: its password masked."""
    return mask_url(url)


def parse_url(url: str) -> tuple[Backend, URL]:
    """Check a registry URL and name its backend; ``InvalidInputError`` for anything else."""
    literal = _SQLITE_URL.fullmatch(url)
    if literal is not None:
        path = literal["path"]
        if not path or path == ":memory:":
            raise InvalidInputError(
                f"invalid registry URL {describe(url)!r}: SQLite needs a file, sqlite:///PATH"
            )
        return "sqlite", URL.create("sqlite", database=path)
    try:
        parsed = make_url(url)
    except Exception:
        raise InvalidInputError(
            f"invalid registry URL {describe(url)!r}: expected sqlite:///PATH or postgresql://…"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        raise InvalidInputError(
            f"invalid registry URL {describe(url)!r}: SQLite needs a file, sqlite:///PATH"
        )
    if backend in {"postgresql", "postgres"}:
        return "postgresql", parsed.set(drivername="postgresql")
    raise InvalidInputError(
        f"unsupported registry URL {describe(url)!r}: expected sqlite:///PATH or postgresql://…"
    )


def sqlite_path(url: URL) -> Path:
    return Path(url.database or "").expanduser()


def sqlite_uri(path: Path, *, create: bool) -> str:
    """The ``file:`` URI of a SQLite database, its path escaped (``#``, ``?``, ``%``, spaces, non-ASCII);
    mode ``rwc`` creates a missing file, ``rw`` fails instead."""
    return f"{path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"


def missing_sqlite(path: Path) -> RegistryNotFoundError:
    if path.is_dir():
        return RegistryNotFoundError(f"no registry at {path}: it is a directory, not a registry file")
    return RegistryNotFoundError(
        f"no registry at {path}: the file does not exist (nothing was saved there yet)"
    )


def _driver_url(url: str, options: RegistryOptions, *, asynchronous: bool) -> tuple[Backend, URL]:
    backend, parsed = parse_url(url)
    if backend == "sqlite":
        path = sqlite_path(parsed)
        if options.create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.is_file():
            raise missing_sqlite(path)
        driver = "sqlite+aiosqlite" if asynchronous else "sqlite+pysqlite"
        return backend, URL.create(
            driver, database=sqlite_uri(path, create=options.create), query={"uri": "true"}
        )
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
        kwargs["connect_args"] = {
            "timeout": options.busy_timeout_ms / 1000,
            "check_same_thread": False,
            "isolation_level": None,
        }
        kwargs["pool_pre_ping"] = False  # a local file has no connection to lose
        kwargs["pool_reset_on_return"] = None  # every operation commits or rolls back itself
    elif asynchronous:
        settings = {"application_name": options.application_name}
        if options.schema:
            settings["search_path"] = options.schema
        kwargs["connect_args"] = {"server_settings": settings, "timeout": options.connect_timeout}
    else:
        # libpq counts whole seconds, at least 2
        connect: dict[str, Any] = {
            "application_name": options.application_name,
            "connect_timeout": max(2, math.ceil(options.connect_timeout)),
        }
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

    backend, driver_url = _driver_url(url, options, asynchronous=True)
    engine = create_async_engine(driver_url, **_engine_kwargs(backend, options, asynchronous=True))
    if backend == "sqlite":
        _sqlite_hooks(engine.sync_engine, options)
    return backend, engine


def create_sync_registry_engine(url: str, options: RegistryOptions) -> tuple[Backend, Engine]:
    """A sync engine (sqlite3 or psycopg 3) with the pool configured; no connection is made yet."""
    backend, driver_url = _driver_url(url, options, asynchronous=False)
    engine = sa.create_engine(driver_url, **_engine_kwargs(backend, options, asynchronous=False))
    if backend == "sqlite":
        _sqlite_hooks(engine, options)
    return backend, engine


def asyncpg_connect_kwargs(engine: AsyncEngine, options: RegistryOptions) -> dict[str, Any]:
    """What ``asyncpg.connect`` needs to open a connection like the engine's pool does."""
    _, kwargs = engine.dialect.create_connect_args(engine.url)
    for adapter_only in ("prepared_statement_cache_size", "prepared_statement_name_func"):
        kwargs.pop(adapter_only, None)
    kwargs.update(_engine_kwargs("postgresql", options, asynchronous=True)["connect_args"])
    return dict(kwargs)
