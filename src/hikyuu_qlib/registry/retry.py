"""Bounded exponential backoff with jitter for transient database faults.

Transient: SQLite busy/locked; PostgreSQL connection loss (reset, closed, admin shutdown 57P01-57P03,
class 08), serialization failure (40001), deadlock (40P01), and a concurrent insert that took the same
``(name, version)`` (unique violation of ``uq_models_name_version``, 23505). When SQLAlchemy sees a
connection die it invalidates it, so the pool replaces it and the next attempt gets a fresh one.
Anything else surfaces at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import exc as sa_exc

from hikyuu_qlib.domain.errors import RegistryUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "55P03", "53300"})
_TRANSIENT_TEXT = ("database is locked", "database is busy", "database table is locked",
                   "connection was closed", "connection is closed", "connection reset",
                   "terminating connection", "server closed the connection", "connection not open",
                   "connection does not exist", "the connection is lost")
_VERSION_RACE = "uq_models_name_version"


def _sqlstate(error: BaseException | None) -> str | None:
    for attr in ("sqlstate", "pgcode"):
        value = getattr(error, attr, None)
        if isinstance(value, str):
            return value
    return None


def is_connection_lost(error: BaseException) -> bool:
    """A DBAPI error that means the connection itself is gone (the pool must replace it)."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig or error
    module = type(error).__module__
    if module.startswith("psycopg") or module.startswith("asyncpg"):
        state = _sqlstate(error) or ""
        name = type(error).__name__
        client_side = {"OperationalError", "InterfaceError", "InternalClientError", "ProtocolError",
                       "ConnectionDoesNotExistError", "ConnectionFailureError"}
        return state.startswith(("08", "57P")) or (name in client_side and not state)
    return isinstance(error, ConnectionError)


def leaves_connection_usable(error: BaseException) -> bool:
    """An error the database reported cleanly (SQLite errors; PostgreSQL errors with an SQLSTATE outside
    the connection classes): the connection can be rolled back and reused. Anything else (client or
    protocol errors, cancellation in the middle of a query) means the connection must be discarded."""
    if isinstance(error, sa_exc.DBAPIError):
        error = error.orig or error
    if type(error).__module__.startswith("sqlite3"):
        return True
    state = _sqlstate(error)
    return bool(state) and not is_connection_lost(error)


def is_transient(error: BaseException) -> bool:
    """Whether retrying the whole operation may succeed."""
    if is_connection_lost(error):
        return True
    if isinstance(error, sa_exc.DBAPIError) or type(error).__module__.startswith(("sqlite3", "psycopg",
                                                                                 "asyncpg")):
        orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
        state = _sqlstate(orig) or _sqlstate(getattr(orig, "__cause__", None))
        if state in _TRANSIENT_SQLSTATES or (state or "").startswith("08"):
            return True
        text = str(orig).lower()
        if state == "23505" or "unique constraint failed: models.name, models.version" in text:
            return _VERSION_RACE in text or "models.name, models.version" in text
        return any(t in text for t in _TRANSIENT_TEXT)
    return bool(isinstance(error, ConnectionError | TimeoutError))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; sleeps ``base * 2**n`` capped at ``cap`` seconds, with full jitter."""

    attempts: int = 8
    base: float = 0.005
    cap: float = 0.5

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2**attempt))


def _give_up(error: BaseException, attempts: int) -> RegistryUnavailableError:
    return RegistryUnavailableError(f"registry database failed {attempts} times with transient faults: {error}")


async def retry_async(operation: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Run ``operation`` (a whole transaction) until it succeeds, a non-transient error, or the bound."""
    for attempt in range(policy.attempts):
        try:
            return await operation()
        except Exception as error:
            if not is_transient(error):
                raise
            if attempt + 1 >= policy.attempts:
                raise _give_up(error, policy.attempts) from error
            log.debug("transient registry fault (attempt %d): %s", attempt + 1, error)
            await asyncio.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")


def retry_sync(operation: Callable[[], T], policy: RetryPolicy) -> T:
    """The blocking twin of :func:`retry_async`."""
    for attempt in range(policy.attempts):
        try:
            return operation()
        except Exception as error:
            if not is_transient(error):
                raise
            if attempt + 1 >= policy.attempts:
                raise _give_up(error, policy.attempts) from error
            log.debug("transient registry fault (attempt %d): %s", attempt + 1, error)
            time.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")
