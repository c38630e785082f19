"""Client spans of the SQL statements the model registry runs on its driver connections.

The registry's hot paths run SQLAlchemy-compiled SQL straight on the pooled driver connection
(:mod:`hikyuu_qlib.registry.driver`, :mod:`hikyuu_qlib.registry.async_driver`,
:mod:`hikyuu_qlib.registry.point_reads`), so SQLAlchemy's execution events, which
``opentelemetry-instrumentation-sqlalchemy`` listens to, never see them: that instrumentation covers the
migrations and the jobs table. These spans cover the rest, with the same attributes (``db.system``,
``db.name``, ``db.statement`` with its parameter markers, never a bound value; ``net.peer.name`` and
``net.peer.port`` on PostgreSQL), kind ``CLIENT``, named ``<operation> <table>`` as the database semantic
conventions suggest (``SELECT models``).

With tracing off the registry uses its plain driver classes and nothing here runs: the traced variants
(:class:`TracedCursor` here; the traced driver and point readers beside their plain classes) are chosen
once, when the registry opens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from hikyuu_qlib.observability.tracing import Tracing

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+([\w.\"]+)", re.IGNORECASE)
#: distinct statements whose span name and attributes are remembered (the registry compiles a few)
_KNOWN = 256


def statement_name(sql: str) -> tuple[str, str]:
    """``(span name, operation)`` of a statement: ``("SELECT models", "SELECT")``."""
    words = sql.split(None, 1)
    operation = words[0].upper() if words else "SQL"
    if operation == "WITH":  # a CTE: name it by the statement that follows
        found = re.search(r"\)\s*(SELECT|INSERT|UPDATE|DELETE)\b", sql, re.IGNORECASE)
        operation = found.group(1).upper() if found else operation
    table = _TABLE.search(sql)
    name = f"{operation} {table.group(1).strip(chr(34))}" if table and operation != "BEGIN" else operation
    return name, operation


class StatementSpans:
    """Makes the span of one statement (see the module) for one registry database."""

    __slots__ = ("_attributes", "_known", "_tracer")

    def __init__(self, tracing: Tracing, backend: str, url: Any) -> None:
        """``url``: the database's SQLAlchemy URL (its name, host and port; never its password)."""
        assert tracing.provider is not None, "statement spans need tracing on"
        self._tracer = tracing.provider.get_tracer("hikyuu_qlib.registry.sql")
        attributes: dict[str, Any] = {"db.system": backend}
        if url.database:
            attributes["db.name"] = url.database
        if backend == "postgresql":
            attributes["net.peer.name"] = url.host or "localhost"
            attributes["net.peer.port"] = int(url.port or 5432)
        self._attributes = attributes
        self._known: dict[str, tuple[str, dict[str, Any]]] = {}

    def span(self, sql: str) -> AbstractContextManager[Any]:
        """The current span of running ``sql`` (an exception leaving it sets the span's status to error)."""
        from opentelemetry.trace import SpanKind

        known = self._known.get(sql)
        if known is None:
            name, operation = statement_name(sql)
            known = (name, {**self._attributes, "db.operation": operation, "db.statement": sql})
            if len(self._known) < _KNOWN:
                self._known[sql] = known
        return self._tracer.start_as_current_span(known[0], kind=SpanKind.CLIENT, attributes=known[1])


class TracedCursor:
    """A DBAPI cursor whose ``execute``/``executemany`` are each one statement span; everything else is the
    wrapped cursor's."""

    __slots__ = ("_cursor", "_spans")

    def __init__(self, cursor: Any, spans: StatementSpans) -> None:
        self._cursor = cursor
        self._spans = spans

    def execute(self, sql: str, params: Any = None) -> Any:
        with self._spans.span(sql):
            return self._cursor.execute(sql) if params is None else self._cursor.execute(sql, params)

    def executemany(self, sql: str, params: Sequence[Any]) -> Any:
        with self._spans.span(sql):
            return self._cursor.executemany(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)
