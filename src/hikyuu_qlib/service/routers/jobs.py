"""Long-running jobs: ``POST /v1/jobs`` (202 + Location), ``GET /v1/jobs[/{id}]``, ``DELETE`` cancels,
``GET /v1/jobs/{id}/wait`` waits for one to end (a long poll, as Google's ``WaitOperation``).

A body is validated by its kind's schema (:mod:`hikyuu_qlib.service.jobs.specs`) before anything is
written; an invalid one is a 422 and no job is recorded, nor is one naming a model the registry does
not hold (404). Jobs run in worker processes of the server's job runner, never on the event loop.
"""

import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi import Path as PathParam
from starlette.responses import Response

from hikyuu_qlib.domain.errors import InvalidSourceError
from hikyuu_qlib.domain.jobs import Job, JobKind, JobStatus
from hikyuu_qlib.observability.tracing import inject_context
from hikyuu_qlib.service.deps import READ, WRITE, json_response, state_of
from hikyuu_qlib.service.jobs.specs import BacktestJob, EvaluateJob, JobBody, body_source
from hikyuu_qlib.service.problems import problems
from hikyuu_qlib.service.routers.models import resolve
from hikyuu_qlib.service.schemas import JobOut, JobPage
from hikyuu_qlib.service.state import ServiceState
from hikyuu_qlib.settings import Settings
from hikyuu_qlib.stores.source import SourceSpec

JobId = Annotated[str, PathParam(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$", description="a job id")]
#: Seconds between reads of a waited-for job's row (the runner records an outcome within its poll).
WAIT_POLL_S = 0.2
#: A wait ends this long before the request timeout, so that it is answered with the job, never a 504.
WAIT_MARGIN_S = 5.0
#: The largest ``timeout`` a wait accepts (a longer one than the server's ``api_max_wait`` is shortened).
MAX_TIMEOUT_S = 86_400.0

_JOB_MODEL_LINK = {
    "GetJobModel": {
        "operationId": "getModel",
        "description": "the model a train job registered (once it succeeded)",
        "parameters": {"model_ref": "$response.body#/result/model_id"},
    }
}


def job_doc(job: Job) -> dict[str, Any]:
    result = job.result
    model_id = result.get("model_id") if isinstance(result, dict) else None
    links: dict[str, Any] = {"self": f"/v1/jobs/{job.id}"}
    if isinstance(model_id, str):
        links["model"] = f"/v1/models/{model_id}"
    return {
        "id": job.id,
        "kind": job.kind.value,
        "status": job.status.value,
        "progress": job.progress,
        "stage": job.stage,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at.isoformat(),
        "started_at": None if job.started_at is None else job.started_at.isoformat(),
        "finished_at": None if job.finished_at is None else job.finished_at.isoformat(),
        "timings": job.timings(),
        "result": result,
        "error": job.error,
        "body": job.body,
        "links": links,
    }


def _check_source(state: ServiceState, named: str | None) -> None:
    """A job reads the server's source; a body may name it (spelled any way), but no other."""
    if named is None:
        return
    if SourceSpec.parse(named).canonical() != SourceSpec.parse(state.settings.source).canonical():
        raise InvalidSourceError(
            f"this server serves {state.source}; a job cannot read another source ({named!r})"
        )


def router(settings: Settings) -> APIRouter:
    api = APIRouter(tags=["jobs"])
    max_page = settings.api_max_page_size
    max_wait = settings.api_max_wait

    @api.post(
        "/v1/jobs",
        status_code=202,
        response_model=JobOut,
        operation_id="createJob",
        summary="Queue a train, evaluate, backtest or workflow job",
        dependencies=WRITE,
        responses={
            202: {
                "description": "queued; poll the URL in Location",
                "headers": {"Location": {"description": "the job's URL", "schema": {"type": "string"}}},
                "links": {
                    "GetJob": {"operationId": "getJob", "parameters": {"job_id": "$response.body#/id"}},
                    "WaitJob": {
                        "operationId": "waitJob",
                        "description": "wait for the job to end (at most the longest wait)",
                        "parameters": {"job_id": "$response.body#/id", "timeout": max_wait},
                    },
                    "CancelJob": {"operationId": "cancelJob", "parameters": {"job_id": "$response.body#/id"}},
                },
            },
            **problems(400, 401, 403, 404, 413, 422),
        },
    )
    async def create_job(request: Request, body: Annotated[JobBody, Body()]) -> Response:
        state = state_of(request)
        _check_source(state, body_source(body))
        if isinstance(body, EvaluateJob | BacktestJob):
            # a model the registry does not hold (or a prefix of several) is refused before anything
            # is written, rather than queued to fail
            await state.models.get(await resolve(state, body.model))
        doc = body.model_dump(mode="json")
        # traced: the job's process continues this request's trace (its spans are children of this one)
        trace = inject_context() if state.telemetry.tracing.enabled else None
        job = await state.run_blocking(lambda: state.jobs.create(JobKind(body.kind), doc, trace))
        return json_response(job_doc(job), 202, headers={"Location": f"/v1/jobs/{job.id}"})

    @api.get(
        "/v1/jobs",
        response_model=JobPage,
        operation_id="listJobs",
        summary="Jobs, newest first, one page at a time",
        dependencies=READ,
        responses={
            200: {
                "description": "one page",
                "links": {
                    "GetFirstJob": {
                        "operationId": "getJob",
                        "parameters": {"job_id": "$response.body#/jobs/0/id"},
                    }
                },
            },
            **problems(400, 401, 403, 422),
        },
    )
    async def list_jobs(
        request: Request,
        status: Annotated[
            Literal["queued", "running", "succeeded", "failed", "cancelled"] | None, Query()
        ] = None,
        page_size: Annotated[int, Query(ge=1, le=max_page, description=f"1..{max_page}")] = 50,
        page_token: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> Response:
        state = state_of(request)
        wanted = None if status is None else JobStatus(status)
        page = await state.run_blocking(
            lambda: state.jobs.page(status=wanted, limit=page_size, token=page_token or None)
        )
        return json_response({"jobs": [job_doc(j) for j in page.items], "next_page_token": page.next_cursor})

    @api.get(
        "/v1/jobs/{job_id}",
        response_model=JobOut,
        operation_id="getJob",
        summary="A job's status, progress, timings, result links and error",
        dependencies=READ,
        responses={
            200: {"description": "the job", "links": _JOB_MODEL_LINK},
            **problems(401, 403, 404, 422),
        },
    )
    async def get_job(request: Request, job_id: JobId) -> Response:
        state = state_of(request)
        job = await state.run_blocking(lambda: state.jobs.get(job_id))
        return json_response(job_doc(job))

    @api.get(
        "/v1/jobs/{job_id}/wait",
        response_model=JobOut,
        operation_id="waitJob",
        summary="Wait for a job to end: its record once it ended, or as it is when the timeout passed",
        description=(
            "A long poll: answers as soon as the job succeeded, failed or was cancelled, else after "
            f"`timeout` seconds (at most {max_wait:g}: a longer one is shortened) with the job as it is "
            "then (still queued or running: ask again)."
        ),
        dependencies=READ,
        responses={
            200: {"description": "the job (ended, or as it is at the timeout)", "links": _JOB_MODEL_LINK},
            **problems(401, 403, 404, 422),
        },
    )
    async def wait_job(
        request: Request,
        job_id: JobId,
        timeout: Annotated[
            float,
            Query(
                ge=0,
                le=MAX_TIMEOUT_S,
                description=f"seconds to wait at most (the server waits {max_wait:g} at most)",
            ),
        ] = max_wait,
    ) -> Response:
        state = state_of(request)
        # answered before the request timeout cuts the request (a 504 would lose the job's state)
        limit = min(timeout, max_wait, max(0.0, state.settings.api_request_timeout - WAIT_MARGIN_S))
        deadline = time.monotonic() + limit
        while True:
            job = await state.run_blocking(lambda: state.jobs.get(job_id))
            left = deadline - time.monotonic()
            if job.status.finished or left <= 0:
                return json_response(job_doc(job))
            await asyncio.sleep(min(WAIT_POLL_S, left))

    @api.delete(
        "/v1/jobs/{job_id}",
        response_model=JobOut,
        status_code=202,
        operation_id="cancelJob",
        summary="Cancel a job (a queued one at once, a running one by stopping its process)",
        dependencies=WRITE,
        responses=problems(401, 403, 404, 409, 422),
    )
    async def cancel_job(request: Request, job_id: JobId) -> Response:
        state = state_of(request)
        job = await state.run_blocking(lambda: state.jobs.cancel(job_id))
        return json_response(job_doc(job), 202)

    return api
