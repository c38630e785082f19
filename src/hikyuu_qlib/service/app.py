"""The FastAPI application of ``hq serve``: built from the settings, its adapters opened in the lifespan.

:func:`create_app` wires routes, bounds, auth and problem documents; the lifespan opens the server's
adapters (:func:`~hikyuu_qlib.service.state.open_state`) and, with ``run_jobs``, the job runner (the
``hq serve`` process runs one runner for all its workers, so its workers are built without one).
OpenAPI 3.1 is served at ``/openapi.json``, the docs at ``/docs``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from hikyuu_qlib.service.bounds import BoundsMiddleware
from hikyuu_qlib.service.deps import READ
from hikyuu_qlib.service.problems import Problem, install
from hikyuu_qlib.service.routers import health, jobs, market, models
from hikyuu_qlib.service.state import ServiceState, close_state, open_state
from hikyuu_qlib.settings import Settings, load_settings

log = logging.getLogger(__name__)

#: Seconds between GIL hand-overs while the server runs (Python's default is 0.005): requests answered
#: on the event loop wait less behind a bar read or a serialisation on an executor thread.
LOOP_SWITCH_INTERVAL = 0.001
#: Set by ``hq serve`` for its worker processes: they stop when it dies.
SUPERVISED_ENV = "HQ_SERVE_SUPERVISED"


def create_app(settings: Settings | None = None, *, run_jobs: bool = False) -> FastAPI:
    from hikyuu_qlib.app import open_telemetry
    from hikyuu_qlib.observability.asgi import MetricsMiddleware
    from hikyuu_qlib.observability.exposition import scrape_registry, worker_exited

    settings = load_settings(settings)
    telemetry = open_telemetry(settings, metrics=True)  # one per worker process
    scraped = scrape_registry(telemetry.metrics)  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if os.environ.get(SUPERVISED_ENV) == "1":
            from hikyuu_qlib.service.lifecycle import die_with_parent

            die_with_parent(signal.SIGTERM)
        state = await open_state(settings, telemetry, run_jobs=run_jobs)
        app.state.hq = state
        app.state.train_example = await _train_example(state)
        log.info("serving %s, registry %s", state.source, state.models.backend)
        # the event loop's thread waits at most this long for the GIL that an executor thread holds
        switch = sys.getswitchinterval()
        sys.setswitchinterval(LOOP_SWITCH_INTERVAL)
        try:
            yield
        finally:
            sys.setswitchinterval(switch)
            await close_state(state)
            worker_exited()  # multiprocess metrics: this worker's live gauges go
            telemetry.close()

    app = FastAPI(
        title="hikyuu-qlib",
        version="1",
        summary="Market data, models, predictions and research jobs over Hikyuu and Qlib stores",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    install(app)
    for build in (health.router, market.router, models.router, jobs.router):
        app.router.routes.extend(build(settings).routes)  # flat: no nested router to match per request

    @app.get("/metrics", include_in_schema=False, dependencies=READ)
    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(scraped), media_type=CONTENT_TYPE_LATEST)

    if settings.api_cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api_cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
        )
    app.add_middleware(
        BoundsMiddleware, max_bytes=settings.api_max_request_bytes, timeout=settings.api_request_timeout
    )
    app.add_middleware(MetricsMiddleware, metrics=telemetry.metrics)
    telemetry.tracing.instrument_fastapi(app, excluded_urls="/metrics,/v1/health,/v1/ready")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            from hikyuu_qlib.service.jobs.examples import with_job_examples

            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            if not hasattr(app.state, "train_example"):
                return schema  # not started: the examples made for the store come with the start
            app.openapi_schema = with_job_examples(schema, app.state.train_example)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _train_example(state: ServiceState) -> dict[str, Any] | None:
    """The OpenAPI example of a train job, made for the server's store (None: the store has no fitting
    universe or days; a failure to read it only costs the example)."""
    from hikyuu_qlib.service.jobs.examples import train_example

    try:
        return await train_example(state.market)
    except Exception:
        log.warning("no example train job in the OpenAPI document", exc_info=True)
        return None


def app_from_env() -> FastAPI:
    """The app of a ``hq serve`` worker process: settings from the environment, no job runner."""
    return create_app(load_settings())
