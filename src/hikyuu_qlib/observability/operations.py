"""Timing, counting and tracing of model registry operations.

The registry's public methods carry :func:`observed` (blocking) or :func:`observed_async`: each call is
one ``hq_db_query_duration_seconds`` observation and one ``hq_db_queries_total`` count by operation,
backend and status (``ok``, or ``error`` when it raised), and, with tracing on, one span
``registry.<operation>``. A registry given no active telemetry has no observer, and the decorators call
straight through.

The async repository's ``get`` and ``find_by_id``, its hot path, are timed in their own bodies instead of by
:func:`observed_async` (no wrapper coroutine): with metrics only, two clock reads and one call of the
:class:`~.recording.DbTimer` bound when the repository was made (an append to a queue: see
:mod:`~.latency`); traced, through :meth:`OperationObserver.acall`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from hikyuu_qlib.observability.recording import DbTimer
from hikyuu_qlib.observability.telemetry import Telemetry

P = ParamSpec("P")
T = TypeVar("T")


class OperationObserver:
    """The metrics and spans of one registry's operations (``backend``: ``sqlite`` or ``postgresql``)."""

    __slots__ = ("_metrics", "_tracing", "backend", "timers", "traced")

    def __init__(self, telemetry: Telemetry, backend: str) -> None:
        self._metrics = telemetry.metrics
        self._tracing = telemetry.tracing
        self.traced = telemetry.tracing.enabled
        self.backend = backend
        self.timers: dict[str, DbTimer] = {}

    def timer(self, operation: str) -> DbTimer:
        timer = self.timers.get(operation)
        if timer is None:
            timer = self.timers[operation] = self._metrics.db_timer(operation, self.backend)
        return timer

    def _attributes(self, operation: str) -> dict[str, str]:
        return {"db.system": self.backend, "hq.operation": operation}

    def call(self, operation: str, fn: Callable[[], T]) -> T:
        """``fn()``, timed, counted and traced as ``operation``."""
        timer = self.timer(operation)
        with self._tracing.span(f"registry.{operation}", self._attributes(operation)):
            started = time.perf_counter()
            try:
                result = fn()
            except BaseException:
                timer.error(time.perf_counter() - started)
                raise
            timer.ok(time.perf_counter() - started)
            return result

    async def acall(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()``, timed, counted and traced as ``operation``."""
        timer = self.timer(operation)
        with self._tracing.span(f"registry.{operation}", self._attributes(operation)):
            started = time.perf_counter()
            try:
                result = await fn()
            except BaseException:
                timer.error(time.perf_counter() - started)
                raise
            timer.ok(time.perf_counter() - started)
            return result

    def retried(self, reason: str) -> None:
        """A try repeated after a transient fault: counted, and an event on the current span."""
        self._metrics.db_retry(self.backend, reason)
        if self._tracing.enabled:
            from opentelemetry import trace

            trace.get_current_span().add_event("retry", {"hq.retry.reason": reason})


class Observable(Protocol):
    """What the decorators read: the registry's observer (``None``: nothing to record)."""

    _observer: OperationObserver | None


S = TypeVar("S", bound=Observable)


def observed(
    operation: str,
) -> Callable[[Callable[Concatenate[S, P], T]], Callable[Concatenate[S, P], T]]:
    """Decorate a blocking registry method: timed, counted and traced as ``operation``."""

    def decorate(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
        def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            observer = self._observer
            if observer is None:
                return method(self, *args, **kwargs)
            if observer.traced:
                return observer.call(operation, lambda: method(self, *args, **kwargs))
            timer = observer.timers.get(operation) or observer.timer(operation)  # metrics only: inline
            started = perf_counter()
            try:
                result = method(self, *args, **kwargs)
            except BaseException:
                timer.error(perf_counter() - started)
                raise
            timer.ok(perf_counter() - started)
            return result

        functools.update_wrapper(wrapper, method)
        return wrapper

    return decorate


def observed_async(
    operation: str,
) -> Callable[[Callable[Concatenate[S, P], Awaitable[T]]], Callable[Concatenate[S, P], Awaitable[T]]]:
    """Decorate an async registry method: timed, counted and traced as ``operation``."""

    def decorate(
        method: Callable[Concatenate[S, P], Awaitable[T]],
    ) -> Callable[Concatenate[S, P], Awaitable[T]]:
        async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            observer = self._observer
            if observer is None:
                return await method(self, *args, **kwargs)
            if observer.traced:
                return await observer.acall(operation, lambda: method(self, *args, **kwargs))
            timer = observer.timers.get(operation) or observer.timer(operation)  # metrics only: inline
            started = perf_counter()
            try:
                result = await method(self, *args, **kwargs)
            except BaseException:
                timer.error(perf_counter() - started)
                raise
            timer.ok(perf_counter() - started)
            return result

        functools.update_wrapper(wrapper, method)
        return wrapper

    return decorate
