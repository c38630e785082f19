"""Errors as RFC 9457 problem details (``application/problem+json``); never a stack trace to a client.

The :class:`HQError` tree maps to statuses:

=========================================  ======  ============================================
error                                      status  why
=========================================  ======  ============================================
IllegalTransitionError                     409     a lifecycle move the state does not allow
InvalidInputError (and subclasses)         400     bad input the schema could not express
request validation (schema)                422     a body or parameter that breaks the schema
request validation (a validator's check)   400     well-formed, invalid (inverted dates …)
NotFoundError (model, code, job …)         404     something named does not exist
StoreNotFoundError, RegistryNotFoundError  503     the server's own store or registry is missing
DataFormatError                            500     corrupt data; the message names the file
RegistryUnavailableError, RegistryAccess…  503     the registry database cannot be used now
any other error                            500     "internal error" (logged with its traceback)
=========================================  ======  ============================================

Partial results are not errors: they are 200 with the per-code errors in the body.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from hikyuu_qlib.domain import errors as E

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem document, with the library's error type in ``error``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a URI naming the kind of problem")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = Field(None, description="the request path")
    error: str = Field(description="the error's type, e.g. ModelNotFoundError")


class ServiceProblem(Exception):
    """A problem the service raises itself (auth, bounds, negotiation)."""

    def __init__(
        self, status: int, error: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name.removesuffix("Error")).lower() or "error"


def status_of(exc: BaseException) -> int:
    """The HTTP status of an error (see the module docstring)."""
    if isinstance(exc, E.IllegalTransitionError):
        return 409
    if isinstance(exc, E.RegistryAccessError):
        return 503
    if isinstance(exc, E.InvalidInputError):
        return 400
    if isinstance(exc, E.StoreNotFoundError | E.RegistryNotFoundError):
        return 503
    if isinstance(exc, E.NotFoundError):
        return 404
    if isinstance(exc, E.RegistryUnavailableError):
        return 503
    return 500


def problem_response(
    status: int,
    error: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    doc: dict[str, Any] = {
        "type": f"urn:hikyuu-qlib:problem:{_kebab(error)}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": instance,
        "error": error,
        **extra,
    }
    return Response(orjson.dumps(doc), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def error_response(exc: BaseException, instance: str | None = None) -> Response:
    """The problem response of any exception reaching a client (unexpected ones are logged, not shown)."""
    if isinstance(exc, ServiceProblem):
        return problem_response(
            exc.status, exc.error, exc.detail, instance=instance, headers=exc.headers, **exc.extra
        )
    status = status_of(exc)
    if isinstance(exc, E.HQError):
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, exc)
        return problem_response(status, type(exc).__name__, str(exc), instance=instance)
    log.error("unexpected error serving %s", instance, exc_info=exc)
    return problem_response(
        500,
        "InternalError",
        "the server failed to answer this request; the error is in its log",
        instance=instance,
    )


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", ""))
        if err.get("type") == "string_pattern_mismatch":  # the pattern itself helps no one
            message = f"malformed value {str(err.get('input'))[:200]!r}"
        problems.append({"field": where, "message": message})
    text = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:10]) or "invalid request"
    return text, problems


def install(app: FastAPI) -> None:
    """Answer every error as a problem document."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        detail, problems = _validation_detail(exc)
        if all(err.get("type") == "value_error" for err in exc.errors()):
            # well-formed, but invalid in a way the schema cannot say (inverted dates, unordered segments)
            return problem_response(
                400, "InvalidInputError", detail, instance=request.url.path, errors=problems
            )
        return problem_response(422, "ValidationError", detail, instance=request.url.path, errors=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed(request))
        name = _TITLES.get(exc.status_code, "Error").replace(" ", "")
        return problem_response(
            exc.status_code, name, str(exc.detail), instance=request.url.path, headers=headers
        )

    @app.exception_handler(ServiceProblem)
    async def _service(request: Request, exc: ServiceProblem) -> Response:
        return error_response(exc, request.url.path)

    @app.exception_handler(E.HQError)
    async def _hq(request: Request, exc: E.HQError) -> Response:
        return error_response(exc, request.url.path)

    @app.exception_handler(Exception)
    async def _any(request: Request, exc: Exception) -> Response:
        return error_response(exc, request.url.path)


def _allowed(request: Request) -> list[str]:
    """Every method some route serves at the request's path (a path may have a route per method)."""
    from starlette.routing import Match

    methods: set[str] = set()
    scope = {**request.scope, "method": "\0"}
    for route in request.app.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods.update(m for m in getattr(route, "methods", None) or () if m != "HEAD")
    return sorted(methods)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses."""
    return {
        status: {
            "description": _TITLES.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def error_doc(errors: dict[str, BaseException]) -> dict[str, dict[str, str]]:
    """Per-code errors of a partial result, as the body carries them beside the data (type and message)."""
    return {code: {"type": type(err).__name__, "message": str(err)} for code, err in sorted(errors.items())}
