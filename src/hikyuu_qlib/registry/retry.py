"""Retries of whole operations on transient database faults: exponential backoff with jitter, under a deadline.

Transient: SQLite busy/locked; PostgreSQL connection loss or refusal (reset, closed, refused while the
server restarts, admin shutdown and "cannot connect now" 57P01-57P03, class 08), serialization failure
(40001), deadlock (40P01), lock not available (55P03), too many connections (53300), and a concurrent
insert that took the same ``(name, version)`` (unique violation of ``uq_models_name_version``, 23505).
An operation that meets one is tried again after a sleep of half to all of ``min(cap, base * 2**n)``
seconds (equal jitter), until it succeeds, ``attempts`` tries were made, or ``deadline`` seconds have
passed since its first fault (30 s by default, ``HQ_REGISTRY_RETRY_DEADLINE``): a server restart of several
seconds is ridden out. When SQLAlchemy sees a connection die it invalidates it, so the pool replaces it
and the next attempt gets a fresh one.

Not transient, and failing at once with a clear message: a rejected password, an unknown role or a missing
permission (:class:`RegistryAccessError`), a missing database (:class:`RegistryNotFoundError`), an unknown
host (:class:`RegistryUnavailableError`); anything else surfaces as it is.

A commit whose connection dropped after COMMIT was sent may or may not have happened. The transaction
raises :class:`CommitInDoubt` carrying what the work returned, and the operation's ``confirm`` reads the
record back by id to learn which: if the commit happened, that is the result (nothing is written twice,
no false failure); if not, the operation is tried again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import exc as sa_exc

from hikyuu_qlib.domain.errors import (
    HQError,
    RegistryAccessError,
    RegistryNotFoundError,
    RegistryUnavailableError,
)
from hikyuu_qlib.observability.redact import mask_secrets

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "55P03", "53300"})
_TRANSIENT_TEXT = (
    "database is locked",
    "database is busy",
    "database table is locked",
    "connection was closed",
    "connection is closed",
    "connection reset",
    "terminating connection",
    "server closed the connection",
    "connection not open",
    "connection does not exist",
    "the connection is lost",
)
_VERSION_RACE = "uq_models_name_version"
_ACCESS_SQLSTATES = frozenset({"28000", "28P01", "42501"})
_NO_DATABASE_SQLSTATES = frozenset({"3D000"})
# libpq reports connection-time failures without an SQLSTATE: recognise them by their text
_ACCESS_TEXT = re.compile(
    r"password authentication failed|authentication failed|no pg_hba\.conf entry"
    r"|role \"[^\"]*\" does not exist|permission denied for database"
    r"|password is required|no password supplied",
    re.IGNORECASE,
)
_NO_DATABASE_TEXT = re.compile(r"database \"[^\"]*\" does not exist", re.IGNORECASE)
_UNKNOWN_HOST_TEXT = re.compile(
    r"could not translate host name|failed to resolve host"
    r"|name or service not known|nodename nor servname",
    re.IGNORECASE,
)

Fatal = Literal["access", "no_database", "unknown_host"]


class CommitInDoubt(Exception):
    """The connection dropped after COMMIT was sent: the transaction may or may not have committed.
    ``result`` is what the transaction's work returned before the commit."""

    def __init__(self, result: Any) -> None:
        super().__init__("the connection was lost while committing")
        self.result = result


def _chain(error: BaseException | None) -> list[BaseException]:
    """The error, the driver error SQLAlchemy wrapped, and what that one was raised from."""
    out: list[BaseException] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen and len(out) < 6:
        seen.add(id(error))
        out.append(error)
        nxt = getattr(error, "orig", None) if isinstance(error, sa_exc.DBAPIError) else None
        error = nxt if isinstance(nxt, BaseException) else error.__cause__
    return out


def _sqlstate(error: BaseException | None) -> str | None:
    for attr in ("sqlstate", "pgcode"):
        value = getattr(error, attr, None)
        if isinstance(value, str):
            return value
    return None


def _state(error: BaseException) -> str | None:
    return next((s for e in _chain(error) if (s := _sqlstate(e))), None)


def _from_driver(error: BaseException) -> bool:
    return any(
        type(e).__module__.startswith(("sqlite3", "psycopg", "asyncpg", "sqlalchemy.dialects"))
        for e in _chain(error)
    )


def fatal_kind(error: BaseException) -> Fatal | None:
    """Whether the error is a refusal that retrying cannot change: bad credentials, a missing database,
    an unknown host."""
    chain = _chain(error)
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "unknown_host"
    if not _from_driver(error):
        return None
    state = _state(error)
    if state in _ACCESS_SQLSTATES:
        return "access"
    if state in _NO_DATABASE_SQLSTATES:
        return "no_database"
    if state is None:
        text = " ".join(str(e) for e in chain)
        if _NO_DATABASE_TEXT.search(text):
            return "no_database"
        if _ACCESS_TEXT.search(text):
            return "access"
        if _UNKNOWN_HOST_TEXT.search(text):
            return "unknown_host"
    return None


def is_connection_lost(error: BaseException) -> bool:
    """A DBAPI error that means the connection itself is gone (the pool must replace it)."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig or error
    module = type(error).__module__
    if module.startswith("psycopg") or module.startswith("asyncpg"):
        if fatal_kind(error) is not None:
            return False
        state = _sqlstate(error) or ""
        name = type(error).__name__
        client_side = {
            "OperationalError",
            "InterfaceError",
            "InternalClientError",
            "ProtocolError",
            "ConnectionDoesNotExistError",
            "ConnectionFailureError",
        }
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
    if fatal_kind(error) is not None:
        return False
    if is_connection_lost(error):
        return True
    if isinstance(error, sa_exc.DBAPIError) or type(error).__module__.startswith(
        ("sqlite3", "psycopg", "asyncpg")
    ):
        orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
        state = _sqlstate(orig) or _sqlstate(getattr(orig, "__cause__", None))
        if state in _TRANSIENT_SQLSTATES or (state or "").startswith("08"):
            return True
        text = str(orig).lower()
        if state == "23505" or "unique constraint failed: models.name, models.version" in text:
            return _VERSION_RACE in text or "models.name, models.version" in text
        return any(t in text for t in _TRANSIENT_TEXT)
    return bool(isinstance(error, ConnectionError | TimeoutError))


def reason(error: BaseException) -> str:
    """The driver's own words for an error, on one line, passwords masked (no SQLAlchemy wrapping)."""
    chain = _chain(error)
    text = str(chain[-1] if len(chain) > 1 else error).strip() or type(chain[-1]).__name__
    if "FATAL:" in text:
        text = text.rsplit("FATAL:", 1)[1]
    first = next((line.strip() for line in text.splitlines() if line.strip()), text)
    return mask_secrets(" ".join(first.split()))


def fatal_error(error: BaseException, where: str) -> HQError | None:
    """The clear error for a refusal that no retry can change, or ``None``."""
    kind = fatal_kind(error)
    if kind == "access":
        return RegistryAccessError(
            f"the registry database {where} refused the connection: {reason(error)} "
            "(check the user, password and permissions in the URL)"
        )
    if kind == "no_database":
        return RegistryNotFoundError(f"no registry database at {where}: {reason(error)}")
    if kind == "unknown_host":
        return RegistryUnavailableError(
            f"cannot reach the registry database {where}: unknown host ({reason(error)})"
        )
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to ``attempts`` tries within ``deadline`` seconds of the first fault; sleeps of half to all of
    ``min(cap, base * 2**n)`` seconds. ``where`` names the database in messages (password masked).
    ``on_retry`` hears of each try repeated, with its reason (``transient`` or ``commit_in_doubt``): the
    registry counts them in ``hq_db_retries_total``."""

    attempts: int = 100
    deadline: float = 30.0
    base: float = 0.01
    cap: float = 1.0
    where: str = "(unnamed)"
    on_retry: Callable[[str], None] | None = None

    def delay(self, attempt: int) -> float:
        step: float = min(self.cap, self.base * 2.0 ** min(attempt, 32))
        return step / 2 + random.uniform(0, step / 2)


class _Faults:
    """The bookkeeping of one operation's retries: when the first fault came, whether to go on."""

    __slots__ = ("first", "policy", "tries")

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.first: float | None = None
        self.tries = 0

    def check(self, error: BaseException) -> None:
        """Raise what the caller should see if ``error`` ends the operation."""
        fatal = fatal_error(error, self.policy.where)
        if fatal is not None:
            raise fatal from error
        if not is_transient(error):
            raise error

    def next_sleep(self, error: BaseException, why: str = "transient") -> float:
        """How long to sleep before the next try; raises once the attempts or the deadline are spent."""
        now = time.monotonic()
        if self.first is None:
            self.first = now
        self.tries += 1
        elapsed = now - self.first
        remaining = self.policy.deadline - elapsed
        if self.tries >= self.policy.attempts or remaining <= 0:
            raise RegistryUnavailableError(
                f"the registry database {self.policy.where} kept failing with transient faults "
                f"({self.tries} tries over {elapsed:.1f} s): {reason(error)}"
            ) from error
        log.debug("transient fault of registry %s (try %d): %s", self.policy.where, self.tries, reason(error))
        if self.policy.on_retry is not None:
            self.policy.on_retry(why)
        return min(self.policy.delay(self.tries - 1), remaining)


async def retry_async(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    confirm: Callable[[T], Awaitable[T | None]] | None = None,
) -> T:
    """Run ``operation`` (a whole transaction) until it succeeds, a non-transient error, or the bound.
    ``confirm(result)`` settles a :class:`CommitInDoubt`: the result if the commit happened, else ``None``."""
    faults = _Faults(policy)
    while True:
        try:
            return await operation()
        except CommitInDoubt as doubt:
            if confirm is not None:
                settled = await confirm(doubt.result)
                if settled is not None:
                    return settled
            error: BaseException = doubt.__cause__ or doubt
            why = "commit_in_doubt"
        except Exception as exc:
            faults.check(exc)
            error, why = exc, "transient"
        await asyncio.sleep(faults.next_sleep(error, why))


def retry_sync(
    operation: Callable[[], T], policy: RetryPolicy, confirm: Callable[[T], T | None] | None = None
) -> T:
    """The blocking twin of :func:`retry_async`."""
    faults = _Faults(policy)
    while True:
        try:
            return operation()
        except CommitInDoubt as doubt:
            if confirm is not None:
                settled = confirm(doubt.result)
                if settled is not None:
                    return settled
            error: BaseException = doubt.__cause__ or doubt
            why = "commit_in_doubt"
        except Exception as exc:
            faults.check(exc)
            error, why = exc, "transient"
        time.sleep(faults.next_sleep(error, why))
