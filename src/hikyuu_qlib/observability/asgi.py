"""HTTP metrics for an ASGI app (the FastAPI service): :class:`MetricsMiddleware`.

``app.add_middleware(MetricsMiddleware, metrics=telemetry.metrics)`` records, for every HTTP request,
``hq_http_requests_total`` and ``hq_http_request_duration_seconds`` by method, route template and status
code, and ``hq_http_requests_in_flight``. The route is the template the router matched
(``/v1/models/{model_id}``), never the raw path, so a label never holds an id; a request that matched no
route is ``unmatched``. The scrape endpoint itself is left out.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hikyuu_qlib.observability.recording import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    """The route template the router matched for this request (Starlette sets ``scope["route"]``)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class MetricsMiddleware:
    """Pure ASGI middleware recording each HTTP request (see the module)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, exclude: tuple[str, ...] = ("/metrics",)) -> None:
        self.app = app
        self.metrics = metrics
        self.exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.metrics.enabled
            or scope.get("path", "").startswith(self.exclude)
        ):
            await self.app(scope, receive, send)
            return
        status = 500  # an exception before the response started is a server error

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        self.metrics.http_in_flight(1)
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.http_in_flight(-1)
            method = scope.get("method", "GET")
            self.metrics.http_request(
                method if method in METHODS else "OTHER",
                route_template(scope),
                status,
                time.perf_counter() - started,
            )
