"""Route helpers: the server's state, the auth dependencies, JSON responses written by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Depends, Request
from starlette.responses import Response

from hikyuu_qlib.service.auth import requires
from hikyuu_qlib.service.state import ServiceState

READ = [Depends(requires("read"))]
WRITE = [Depends(requires("write"))]


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.hq
    return state


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )
