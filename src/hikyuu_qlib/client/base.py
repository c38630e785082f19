"""What :class:`~.Client` and :class:`~.AsyncClient` share: how each call is asked and how each answer
is read (a :class:`Call` per endpoint). A client only sends the requests (blocking or awaited), as httpx's
two clients share one base.

Frames travel as Arrow IPC streams and come back as polars frames; the per-code errors that travel
beside them (the stream's ``hq.meta``) come back as the library's own error types, and so do problem
documents: a 404 for a model is a :class:`ModelNotFoundError`, an invalid page token an
:class:`InvalidCursorError`, as in process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from hikyuu_qlib.domain import errors as E
from hikyuu_qlib.domain.jobs import Job, JobKind, JobNotFoundError, JobStatus
from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.loadplan import LoadResult

ARROW = "application/vnd.apache.arrow.stream"
#: What the clients ask bars in: Arrow IPC with zstd-compressed buffers (pyarrow reads them as they come).
ARROW_ZSTD = f"{ARROW}; compression=zstd"
DateLike = str | dt.date | None
T = TypeVar("T")


class ServiceError(E.HQError):
    """The server failed (5xx) or answered something the client cannot read."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ServiceAuthError(ServiceError):
    """The server refused the token: missing or unknown (401), or of the read scope for a write (403)."""


class JobFailedError(E.HQError):
    """A job ended failed or cancelled; ``job`` holds its record (its ``error`` says why)."""

    def __init__(self, job: Job) -> None:
        error = job.error or {}
        super().__init__(f"job {job.id} ({job.kind.value}) {job.status.value}: {error.get('message', '')}")
        self.job = job


@dataclass(frozen=True)
class Predictions:
    """Scores (``datetime, code, score``) of the members that loaded, and the errors of the others."""

    frame: pl.DataFrame
    model_id: str
    universe: str
    errors: dict[str, E.HQError] = field(default_factory=dict)


def _error_types() -> dict[str, type[E.HQError]]:
    found: dict[str, type[E.HQError]] = {"JobNotFoundError": JobNotFoundError}
    for name in dir(E):
        value = getattr(E, name)
        if isinstance(value, type) and issubclass(value, E.HQError) and value is not E.LoadErrors:
            found[name] = value
    return found


_BY_STATUS: dict[int, type[E.HQError]] = {
    400: E.InvalidInputError,
    404: E.NotFoundError,
    406: E.InvalidInputError,
    409: E.IllegalTransitionError,
    413: E.InvalidInputError,
    422: E.InvalidInputError,
    503: E.RegistryUnavailableError,
}


def make_error(name: str, message: str, status: int | None = None) -> E.HQError:
    """The library's error named ``name`` (by class name), else one of the status's kind."""
    if status in (401, 403):
        return ServiceAuthError(message, status)
    kind = _error_types().get(name)
    if kind is None or kind is E.HQError:
        kind = _BY_STATUS.get(status or 0) or ServiceError
    if kind is ServiceError:
        return ServiceError(message, status)
    try:
        return kind(message)
    except TypeError:
        return ServiceError(message, status)


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the library's error for an error response (its problem document names the type)."""
    if response.status_code < 400:
        return
    try:
        doc = orjson.loads(response.content)
        name, detail = str(doc.get("error", "")), str(doc.get("detail", ""))
    except (orjson.JSONDecodeError, AttributeError):
        name, detail = "", response.text[:500]
    raise make_error(name, detail or f"HTTP {response.status_code}", response.status_code)


def code_errors(doc: Mapping[str, Any] | None) -> dict[str, E.HQError]:
    return {code: make_error(e.get("type", ""), e.get("message", "")) for code, e in (doc or {}).items()}


def read_arrow(content: bytes) -> tuple[pl.DataFrame, dict[str, Any]]:
    """A frame and its ``hq.meta`` from an Arrow IPC stream."""
    reader = ipc.open_stream(pa.BufferReader(content))
    table = reader.read_all()
    meta_raw = (reader.schema.metadata or {}).get(b"hq.meta")
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame, orjson.loads(meta_raw) if meta_raw else {}


def _day(value: DateLike) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def bars_params(
    codes: str | Iterable[str] | None,
    universe: str | None,
    start: DateLike,
    end: DateLike,
    ktype: str,
    adjust: str,
) -> dict[str, Any]:
    text = None if codes is None else (codes if isinstance(codes, str) else ",".join(str(c) for c in codes))
    return _clean(
        {
            "codes": text,
            "universe": universe,
            "start": _day(start),
            "end": _day(end),
            "ktype": ktype,
            "adjust": adjust,
        }
    )


def load_result(response: httpx.Response) -> LoadResult:
    return load_result_source(response)[0]


def load_result_source(response: httpx.Response) -> tuple[LoadResult, str]:
    """The load result of a bars response, and the source the server read."""
    raise_for_problem(response)
    frame, meta = read_arrow(response.content)
    result = LoadResult(frame, code_errors(meta.get("errors")), tuple(meta.get("without_bars") or ()))
    return result, str(meta.get("source") or "")


def predictions(response: httpx.Response) -> Predictions:
    raise_for_problem(response)
    frame, meta = read_arrow(response.content)
    return Predictions(
        frame, str(meta.get("model_id")), str(meta.get("universe")), code_errors(meta.get("errors"))
    )


def json_of(response: httpx.Response) -> Any:
    raise_for_problem(response)
    return orjson.loads(response.content)


def job_of(doc: Mapping[str, Any]) -> Job:
    def when(value: Any) -> dt.datetime | None:
        return None if value is None else dt.datetime.fromisoformat(value)

    created = when(doc["created_at"])
    assert created is not None
    return Job(
        id=doc["id"],
        kind=JobKind(doc["kind"]),
        status=JobStatus(doc["status"]),
        body=doc.get("body") or {},
        created_at=created,
        progress=float(doc.get("progress") or 0.0),
        stage=doc.get("stage"),
        result=doc.get("result"),
        error=doc.get("error"),
        started_at=when(doc.get("started_at")),
        finished_at=when(doc.get("finished_at")),
        cancel_requested=bool(doc.get("cancel_requested")),
        extra={"links": doc.get("links") or {}},
    )


def job_body(kind: str | JobKind, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {**spec, "kind": JobKind(kind).value}


def models_params(
    status: str | None,
    model_type: str | None,
    name: str | None,
    tags: Mapping[str, str] | None,
    order: str,
    page_size: int,
) -> dict[str, Any]:
    return _clean(
        {
            "status": status,
            "type": model_type,
            "name": name,
            "tag": [f"{k}={v}" for k, v in (tags or {}).items()] or None,
            "order": order,
            "page_size": page_size,
        }
    )


def models_page(response: httpx.Response) -> tuple[list[Model], str | None]:
    doc = json_of(response)
    return [Model.from_json(m) for m in doc["models"]], doc.get("next_page_token")


def importance_of(response: httpx.Response) -> dict[str, list[dict[str, Any]]] | None:
    """Per kind, the top features (``[{"feature", "value"}]``, largest first); None for a model stored
    without feature importance (as :func:`~hikyuu_qlib.modelling.importance.load_importance`)."""
    try:
        doc = json_of(response)
    except E.ImportanceNotFoundError:
        return None
    return {str(kind): list(rows) for kind, rows in doc["importance"].items()}


def stocks_params(
    market: str | None,
    type: str | Iterable[str] | None,
    has_data: bool | None,
    valid: bool | None,
    page_size: int,
) -> dict[str, Any]:
    types = None if type is None else [type] if isinstance(type, str) else list(type) or None
    return _clean(
        {"market": market, "type": types, "has_data": has_data, "valid": valid, "page_size": page_size}
    )


#: Seconds one long poll of :meth:`Client.wait` asks the server to wait at most.
WAIT_CHUNK_S = 60.0


def wait_chunk(left: float) -> float:
    """The timeout of the next long poll: what is left of the caller's, within one chunk."""
    return max(0.0, min(WAIT_CHUNK_S, left))


def wait_http_timeout(wait: float) -> httpx.Timeout:
    """The HTTP timeout of a long poll: the wait, and time for the answer."""
    return httpx.Timeout(wait + 30.0, connect=10.0)


def check_finished(job: Job, raise_on_failure: bool) -> Job:
    if raise_on_failure and job.status is not JobStatus.SUCCEEDED:
        raise JobFailedError(job)
    return job


def headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def stock_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    from hikyuu_qlib.domain.schema import STOCK_SCHEMA

    frame = pl.DataFrame(
        rows,
        schema={k: (pl.String if k in ("start_date", "end_date") else v) for k, v in STOCK_SCHEMA.items()},
    )
    return frame.with_columns(pl.col("start_date", "end_date").str.to_date())


def members_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    from hikyuu_qlib.domain.schema import DATETIME

    frame = pl.DataFrame(rows, schema={"code": pl.String, "start": pl.String, "end": pl.String})
    return frame.with_columns(pl.col("start", "end").str.to_datetime("%Y-%m-%dT%H:%M:%S").cast(DATETIME))


# --- the calls: one request each, and how its answer is read ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request to the service and the reader of its response (raising the library's error for a
    problem document)."""

    method: str
    url: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    #: the HTTP timeout of this call when it is not the client's (a long poll waits longer)
    timeout: httpx.Timeout | None = None


def _document(response: httpx.Response) -> dict[str, Any]:
    return dict(json_of(response))


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/v1/health", _document)


def ready() -> Call[dict[str, Any]]:
    """The readiness checks (a 503 raises :class:`ServiceError`)."""
    return Call("GET", "/v1/ready", _document)


def _stock_rows(response: httpx.Response) -> tuple[list[dict[str, Any]], str | None, str]:
    doc = json_of(response)
    return list(doc["stocks"]), doc.get("next_page_token") or None, str(doc.get("source") or "")


def stocks_page(
    params: Mapping[str, Any], page_token: str | None
) -> Call[tuple[list[dict[str, Any]], str | None, str]]:
    """One page of the stock list (rows as the server sends them), the token of the next and the source
    the server listed them from."""
    return Call("GET", "/v1/stocks", _stock_rows, params=_clean({**params, "page_token": page_token}))


def bars(params: Mapping[str, Any]) -> Call[tuple[LoadResult, str]]:
    """Bars (``params`` from :func:`bars_params`) in Arrow with zstd buffers, and the source read."""
    return Call("GET", "/v1/bars", load_result_source, params=params, headers={"Accept": ARROW_ZSTD})


def members(universe: str, date: DateLike) -> Call[pl.DataFrame]:
    return Call(
        "GET",
        f"/v1/universes/{universe}/members",
        lambda response: members_frame(json_of(response)["members"]),
        params=_clean({"date": _day(date)}),
    )


def models(params: Mapping[str, Any], page_token: str | None) -> Call[tuple[list[Model], str | None]]:
    """One page of models (``params`` from :func:`models_params`) and the token of the next."""
    return Call("GET", "/v1/models", models_page, params=_clean({**params, "page_token": page_token}))


def model(ref: str) -> Call[Model]:
    return Call("GET", f"/v1/models/{ref}", lambda response: Model.from_json(json_of(response)))


def _transition(response: httpx.Response) -> tuple[str, Model]:
    doc = json_of(response)
    return str(doc["from"]), Model.from_json(doc["model"])


def importance(ref: str, top: int) -> Call[dict[str, list[dict[str, Any]]] | None]:
    """A model's feature importance, its ``top`` features per kind (None for a model stored without)."""
    return Call("GET", f"/v1/models/{ref}/importance", importance_of, params={"top": top})


def promote(ref: str, to: str) -> Call[tuple[str, Model]]:
    """Move a model to ``to``: the status it had, and the model as it is now."""
    return Call("POST", f"/v1/models/{ref}/promote", _transition, json={"to": to})


def delete_model(model_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/models/{model_id}", raise_for_problem)


def predict(model: str, start: DateLike, end: DateLike, universe: str | None) -> Call[Predictions]:
    body = _clean({"model": model, "universe": universe, "start": _day(start), "end": _day(end)})
    return Call("POST", "/v1/predictions", predictions, json=body, headers={"Accept": ARROW})


def _job(response: httpx.Response) -> Job:
    return job_of(json_of(response))


def submit(kind: str | JobKind, spec: Mapping[str, Any]) -> Call[Job]:
    """Queue a job (``spec`` as the job's schema, without ``kind``)."""
    return Call("POST", "/v1/jobs", _job, json=job_body(kind, spec))


def job(job_id: str) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{job_id}", _job)


def _jobs(response: httpx.Response) -> tuple[list[Job], str | None]:
    doc = json_of(response)
    return [job_of(j) for j in doc["jobs"]], doc.get("next_page_token") or None


def jobs(status: str | None, page_size: int, page_token: str | None) -> Call[tuple[list[Job], str | None]]:
    """One page of jobs (newest first) and the token of the next (None on the last page)."""
    params = _clean({"status": status, "page_size": page_size, "page_token": page_token})
    return Call("GET", "/v1/jobs", _jobs, params=params)


def cancel(job_id: str) -> Call[Job]:
    return Call("DELETE", f"/v1/jobs/{job_id}", _job)


def wait(job_id: str, timeout: float) -> Call[Job]:
    """One long poll: the job once it ended, or as it is after ``timeout`` seconds (the server may wait
    less; ``GET /v1/jobs/{id}/wait``)."""
    return Call(
        "GET",
        f"/v1/jobs/{job_id}/wait",
        _job,
        params={"timeout": timeout},
        timeout=wait_http_timeout(timeout),
    )


def still_running(job_id: str, current: Job, deadline: float, timeout: float, now: float) -> bool:
    """Whether a waited-for job is to be asked for again; past the deadline a :class:`TimeoutError`."""
    if current.status.finished:
        return False
    if now >= deadline:
        raise TimeoutError(f"job {job_id} still {current.status.value} after {timeout:g} s")
    return True


def pause(poll: float, asked: float, deadline: float, now: float) -> float:
    """Seconds to sleep before the next long poll: polls at least ``poll`` seconds apart, never past the
    deadline."""
    return max(0.0, min(poll - (now - asked), deadline - now))
