"""``/v1/health`` (liveness) and ``/v1/ready`` (the registry, the store and, when one is configured,
the cache answer). Neither needs a token."""

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from hikyuu_qlib.observability.redact import mask_secrets
from hikyuu_qlib.service.deps import json_response, state_of
from hikyuu_qlib.service.schemas import Health, Ready
from hikyuu_qlib.service.state import ServiceState
from hikyuu_qlib.settings import Settings

#: Seconds each readiness check may take.
CHECK_TIMEOUT = 5.0


async def _registry(state: ServiceState) -> str:
    await state.models.count()
    return f"{state.models.backend} registry answers"


async def _store(state: ServiceState) -> str:
    days = await state.market.calendar()
    return f"{state.source}: {days.len()} trading days"


async def _cache(url: str) -> str:
    """The shared cache's Redis answers a PING (the one check to point at the cache port)."""
    import redis.asyncio as aioredis

    from hikyuu_qlib.observability.redact import mask_url

    client = aioredis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT)
    try:
        await client.ping()
    finally:
        await client.aclose()
    return f"redis at {mask_url(url)} answers"


def router(settings: Settings) -> APIRouter:
    api = APIRouter(tags=["health"])

    @api.get("/v1/health", response_model=Health, operation_id="health", summary="Liveness")
    async def health() -> Response:
        from hikyuu_qlib.version import package_version

        return json_response({"status": "ok", "version": package_version()})

    @api.get(
        "/v1/ready",
        response_model=Ready,
        operation_id="ready",
        summary="Readiness: the registry, the store and the cache answer",
        responses={503: {"model": Ready, "description": "a dependency does not answer"}},
    )
    async def ready(request: Request) -> Response:
        state = state_of(request)
        checks: dict[str, Callable[[], Awaitable[str]]] = {
            "registry": lambda: _registry(state),
            "store": lambda: _store(state),
        }
        if state.settings.cache_url:
            url = state.settings.cache_url
            checks["cache"] = lambda: _cache(url)

        async def run(check: Callable[[], Awaitable[str]]) -> dict[str, object]:
            started = time.perf_counter()
            try:
                detail = await asyncio.wait_for(check(), CHECK_TIMEOUT)
                ok = True
            except Exception as exc:
                detail, ok = mask_secrets(f"{type(exc).__name__}: {exc}"), False
            return {"ok": ok, "detail": detail, "seconds": round(time.perf_counter() - started, 4)}

        results = await asyncio.gather(*(run(c) for c in checks.values()))
        doc = dict(zip(checks, results, strict=True))
        ok = all(r["ok"] for r in results)
        return json_response({"status": "ready" if ok else "unavailable", "checks": doc}, 200 if ok else 503)

    return api
