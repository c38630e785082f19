"""Request bounds, as plain ASGI middleware (no per-request overhead beyond a few checks).

- a body larger than ``max_bytes`` (by its Content-Length, or counted as it arrives) is a 413;
- a request that has not started its response within ``timeout`` seconds is a 504 (a streaming
  response, once started, is not cut).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hikyuu_qlib.service.problems import problem_response


class _TooLarge(Exception):
    pass


class BoundsMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = -1
                if size < 0 or size > self.max_bytes:
                    await self._problem(
                        scope, send, 413, f"the request body is larger than {self.max_bytes:,} bytes"
                    )
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        started = False
        deadline: asyncio.Timeout | None = None

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if deadline is not None:
                    deadline.reschedule(None)  # a started (streaming) response is not cut
            await send(message)

        try:
            async with asyncio.timeout(self.timeout) as deadline:
                await self.app(scope, limited_receive, tracking_send)
        except TimeoutError:
            if not started:
                await self._problem(scope, send, 504, f"the request took longer than {self.timeout:g} s")
        except _TooLarge:
            if not started:
                await self._problem(
                    scope, send, 413, f"the request body is larger than {self.max_bytes:,} bytes"
                )

    @staticmethod
    async def _problem(scope: Scope, send: Send, status: int, detail: str) -> None:
        error = "ContentTooLarge" if status == 413 else "Timeout"
        response = problem_response(status, error, detail, instance=str(scope.get("path")))
        await response(scope, _noop_receive, send)


async def _noop_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}
