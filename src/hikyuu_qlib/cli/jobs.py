"""``hq jobs …``: the jobs of a server (``--server`` or ``HQ_SERVER``): submit, list, show, wait, cancel.

A job's document is the server's own (``GET /v1/jobs/{id}``): status, progress, timings, result, error
and links. ``submit`` takes the job's body as JSON (a file, or ``-`` for stdin), validated by the server
with the workflow file's schemas.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from hikyuu_qlib.cli.options import OutputFormat, SummaryFormatOption
from hikyuu_qlib.cli.output import emit_json, guarded, print_fields, stderr_console, stdout_console
from hikyuu_qlib.cli.remote import Remote, ServerOption, TokenOption, remote_of
from hikyuu_qlib.domain.errors import InvalidInputError

if TYPE_CHECKING:
    from hikyuu_qlib.domain.jobs import Job

jobs_app = typer.Typer(
    help="Jobs of a server (hq serve): submit, list, show, wait, cancel.", no_args_is_help=True
)

JobIdArgument = Annotated[str, typer.Argument(help="a job id")]


def _server(server: str | None, token: str | None) -> Remote:
    from hikyuu_qlib.cli.telemetry import current

    remote = remote_of(server, token, current().settings)
    if remote is None:
        raise InvalidInputError("jobs live on a server: give --server URL (or set HQ_SERVER)")
    return remote


def job_document(job: Job) -> dict[str, Any]:
    """The server's document of a job."""
    from hikyuu_qlib.service.routers.jobs import job_doc

    return job_doc(job)


def _print_job(job: Job, fmt: OutputFormat) -> None:
    doc = job_document(job)
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    print_fields({k: v for k, v in doc.items() if v is not None and k != "links"})


def _read_body(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        where = "stdin" if path == "-" else path
        raise InvalidInputError(f"{where}: not a JSON document ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise InvalidInputError("a job body is a JSON object")
    return doc


@jobs_app.command("submit")
@guarded
def submit(
    kind: Annotated[str, typer.Argument(help="train, evaluate, backtest or workflow")],
    body: Annotated[str, typer.Argument(help="the job's body: a JSON file, or - for stdin")],
    wait: Annotated[
        bool, typer.Option("--wait", help="wait for the job to finish (Ctrl-C cancels it)")
    ] = False,
    server: ServerOption = None,
    token: TokenOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Queue a job on the server; prints its document (with --wait, once it finished)."""
    from hikyuu_qlib.domain.jobs import JobKind

    try:
        chosen = JobKind(kind)
    except ValueError:
        names = ", ".join(k.value for k in JobKind)
        raise InvalidInputError(f"unknown job kind {kind!r}: expected one of {names}") from None
    spec = _read_body(body)
    spec.pop("kind", None)
    with _server(server, token).client() as hq:
        job = hq.submit(chosen, spec)
        if wait:
            job = _wait(hq, job.id, fmt)
    _print_job(job, fmt)


def _wait(hq: Any, job_id: str, fmt: OutputFormat, timeout: float = 24 * 3600.0) -> Job:
    if fmt is not OutputFormat.json:
        stderr_console().print(f"waiting for job {job_id}", highlight=False)
    try:
        job: Job = hq.wait(job_id, timeout=timeout, poll=0.5, raise_on_failure=False)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            hq.cancel(job_id)
        raise
    return job


@jobs_app.command("list")
@guarded
def list_jobs(
    status: Annotated[
        str | None, typer.Option("--status", help="queued, running, succeeded, failed or cancelled")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="jobs per page")] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="the next cursor printed by the last page")
    ] = None,
    server: ServerOption = None,
    token: TokenOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """One page of the server's jobs, newest first; prints the cursor of the next page."""
    from hikyuu_qlib.domain.jobs import JobStatus

    if status is not None:
        try:
            JobStatus(status)
        except ValueError:
            names = ", ".join(s.value for s in JobStatus)
            raise InvalidInputError(f"unknown job status {status!r}: expected one of {names}") from None
    with _server(server, token).client() as hq:
        items, following = hq.jobs_page(status=status, page_size=limit, page_token=cursor)
    if fmt is OutputFormat.json:
        emit_json({"rows": len(items), "jobs": [job_document(j) for j in items], "next_cursor": following})
        return
    table = Table()
    for column in ("id", "kind", "status", "progress", "stage", "created"):
        table.add_column(column, justify="right" if column == "progress" else "left", no_wrap=column == "id")
    for job in items:
        table.add_row(
            job.id,
            job.kind.value,
            job.status.value,
            f"{job.progress:.0%}",
            job.stage or "",
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    stdout_console().print(table)
    note = f"next cursor: {following}" if following else "next cursor: (none, last page)"
    stderr_console().print(note, highlight=False, soft_wrap=True)


@jobs_app.command("show")
@guarded
def show(
    job_id: JobIdArgument,
    server: ServerOption = None,
    token: TokenOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """A job's status, progress, timings, result and error."""
    with _server(server, token).client() as hq:
        job = hq.job(job_id)
    _print_job(job, fmt)


@jobs_app.command("wait")
@guarded
def wait_for(
    job_id: JobIdArgument,
    timeout: Annotated[float, typer.Option("--timeout", min=0.0, help="seconds to wait at most")] = 24
    * 3600.0,
    server: ServerOption = None,
    token: TokenOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Wait for a job to finish and print it; exits 1 when it failed or was cancelled."""
    from hikyuu_qlib.cli.errors import ExitCode
    from hikyuu_qlib.domain.jobs import JobStatus

    with _server(server, token).client() as hq:
        job = _wait(hq, job_id, fmt, timeout)
    _print_job(job, fmt)
    if job.status is not JobStatus.SUCCEEDED:
        raise typer.Exit(ExitCode.FAILURE)


@jobs_app.command("cancel")
@guarded
def cancel(
    job_id: JobIdArgument,
    server: ServerOption = None,
    token: TokenOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Cancel a job (a queued one at once, a running one by stopping its process)."""
    with _server(server, token).client() as hq:
        job = hq.cancel(job_id)
    _print_job(job, fmt)
