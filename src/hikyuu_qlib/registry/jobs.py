"""Jobs in the registry database: the HTTP service's queue (table ``jobs``, migration 0004).

Blocking, over an open :class:`~hikyuu_qlib.registry.sync.ModelRegistry`'s engine; each operation is one
short transaction retried whole on transient faults. State changes are compare-and-set on ``status``, so
two runners never claim one job and a job finished by its runner is never overwritten by a cancel.
Pages are keyset pages (newest first) whose tokens the registry signs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from ulid import ULID

from hikyuu_qlib.domain.errors import IllegalTransitionError, InvalidInputError
from hikyuu_qlib.domain.jobs import Job, JobKind, JobNotFoundError, JobStatus
from hikyuu_qlib.domain.model import from_micros
from hikyuu_qlib.domain.queries import Page
from hikyuu_qlib.registry.codec import to_micros
from hikyuu_qlib.registry.engine import WRITE
from hikyuu_qlib.registry.retry import retry_sync
from hikyuu_qlib.registry.sync import ModelRegistry
from hikyuu_qlib.registry.tables import jobs

T = TypeVar("T")

#: A running job whose runner gave no sign of life for this long is taken for dead.
STALE_AFTER_S = 60.0


def runner_name() -> str:
    """``host:pid`` of this process: what a runner writes into the jobs it claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> int:
    return to_micros(dt.datetime.now(dt.UTC))


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value


def _job(row: Any) -> Job:
    m = row._mapping
    return Job(
        id=m["id"],
        kind=JobKind(m["kind"]),
        status=JobStatus(m["status"]),
        body=_json(m["body"]),
        created_at=from_micros(m["created_at"]),
        progress=float(m["progress"]),
        stage=m["stage"],
        result=_json(m["result"]),
        error=_json(m["error"]),
        started_at=None if m["started_at"] is None else from_micros(m["started_at"]),
        finished_at=None if m["finished_at"] is None else from_micros(m["finished_at"]),
        cancel_requested=bool(m["cancel_requested"]),
        runner=m["runner"],
        trace_context=_json(m["trace_context"]),
    )


class JobStore:
    """The jobs table of one open registry."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def _run(self, work: Callable[[sa.Connection], T], *, write: bool) -> T:
        engine = self._registry.engine
        if write:
            engine = engine.execution_options(**WRITE)

        def attempt() -> T:
            with engine.begin() as conn:
                return work(conn)

        return retry_sync(attempt, self._registry.retry_policy)

    # --- the API's side -------------------------------------------------------------------------------

    def create(self, kind: JobKind, body: dict[str, Any], trace_context: dict[str, str] | None = None) -> Job:
        """Queue a job; ``trace_context``: the submitting request's (see
        :func:`~hikyuu_qlib.observability.tracing.inject_context`), continued by the job's process."""
        now = _now()
        job_id = str(ULID())
        values: dict[str, Any] = {
            "id": job_id,
            "kind": kind.value,
            "status": JobStatus.QUEUED.value,
            "body": body,
            "progress": 0.0,
            "cancel_requested": False,
            "created_at": now,
            "trace_context": trace_context or None,
        }
        self._run(lambda c: c.execute(sa.insert(jobs).values(**values)), write=True)
        return self.get(job_id)

    def find(self, job_id: str) -> Job | None:
        rows = self._run(lambda c: c.execute(sa.select(jobs).where(jobs.c.id == job_id)).all(), write=False)
        return _job(rows[0]) if rows else None

    def get(self, job_id: str) -> Job:
        found = self.find(job_id)
        if found is None:
            raise JobNotFoundError(f"no job {job_id!r}")
        return found

    def page(
        self, *, status: JobStatus | None = None, limit: int = 50, token: str | None = None
    ) -> Page[Job]:
        """Jobs newest first, ``limit`` at a time; ``token`` is the ``next_cursor`` of the previous page."""
        if limit < 1:
            raise InvalidInputError(f"page size must be at least 1, got {limit}")
        fingerprint = hashlib.sha256(f"jobs|{status}".encode()).hexdigest()[:16]
        codec = self._registry.cursors
        stmt = sa.select(jobs)
        if status is not None:
            stmt = stmt.where(jobs.c.status == status.value)
        if token:
            created, last_id = codec.decode(token, "jobs:-created", fingerprint)
            stmt = stmt.where(sa.tuple_(jobs.c.created_at, jobs.c.id) < sa.tuple_(created, last_id))
        stmt = stmt.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
        rows = self._run(lambda c: c.execute(stmt).all(), write=False)
        items = [_job(r) for r in rows[:limit]]
        following = None
        if len(rows) > limit:
            last = items[-1]
            following = codec.encode("jobs:-created", fingerprint, [to_micros(last.created_at), last.id])
        return Page(items, following)

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one at once, a running one by asking its runner (which stops the worker
        process and records ``cancelled``). A finished job cannot be cancelled (409)."""

        def work(c: sa.Connection) -> None:
            now = _now()
            queued = c.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED.value)
                .values(
                    status=JobStatus.CANCELLED.value,
                    cancel_requested=True,
                    finished_at=now,
                    error={"type": "Cancelled", "message": "cancelled before it started"},
                )
            )
            if queued.rowcount:
                return
            c.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
                .values(cancel_requested=True)
            )

        self._run(work, write=True)
        job = self.get(job_id)
        if job.status.finished and job.status is not JobStatus.CANCELLED:
            raise IllegalTransitionError(f"job {job_id} already {job.status.value}: it cannot be cancelled")
        return job

    # --- the runner's side ----------------------------------------------------------------------------

    def claim(self, runner: str) -> Job | None:
        """The oldest queued job, now running under ``runner``; ``None`` when none is queued."""

        def work(c: sa.Connection) -> str | None:
            first = c.execute(
                sa.select(jobs.c.id)
                .where(jobs.c.status == JobStatus.QUEUED.value)
                .order_by(jobs.c.created_at, jobs.c.id)
                .limit(1)
            ).scalar()
            if first is None:
                return None
            now = _now()
            done = c.execute(
                sa.update(jobs)
                .where(jobs.c.id == first, jobs.c.status == JobStatus.QUEUED.value)
                .values(
                    status=JobStatus.RUNNING.value,
                    runner=runner,
                    started_at=now,
                    heartbeat_at=now,
                    stage="starting",
                )
            )
            return str(first) if done.rowcount else None

        claimed = self._run(work, write=True)
        return None if claimed is None else self.get(claimed)

    def report(self, job_id: str, progress: float, stage: str | None) -> None:
        """Progress of a running job (also its heartbeat)."""
        value = min(1.0, max(0.0, float(progress)))
        self._run(
            lambda c: c.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
                .values(progress=value, stage=stage, heartbeat_at=_now())
            ),
            write=True,
        )

    def heartbeat(self, job_ids: list[str]) -> list[str]:
        """Mark the runner's jobs alive; returns those whose cancel was requested."""
        if not job_ids:
            return []

        def work(c: sa.Connection) -> list[str]:
            c.execute(sa.update(jobs).where(jobs.c.id.in_(job_ids)).values(heartbeat_at=_now()))
            return [
                str(i)
                for i in c.execute(
                    sa.select(jobs.c.id).where(jobs.c.id.in_(job_ids), jobs.c.cancel_requested.is_(True))
                ).scalars()
            ]

        return self._run(work, write=True)

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """Record the outcome of a running job; ``False`` if it was not running any more."""
        if not status.finished:
            raise InvalidInputError(f"{status.value} is not a final job status")
        values: dict[str, Any] = {
            "status": status.value,
            "finished_at": _now(),
            "result": result,
            "error": error,
        }
        if status is JobStatus.SUCCEEDED:
            values["progress"] = 1.0
        done = self._run(
            lambda c: (
                c.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
                    .values(**values)
                ).rowcount
            ),
            write=True,
        )
        return bool(done)

    def recover(self, alive: Callable[[str], bool], stale_after: float = STALE_AFTER_S) -> list[str]:
        """Mark failed every running job whose runner is gone: ``alive(runner)`` says no (a process of this
        host that no longer exists), or its heartbeat is older than ``stale_after`` seconds. Returns them."""
        horizon = _now() - int(stale_after * 1_000_000)

        def work(c: sa.Connection) -> list[str]:
            rows = c.execute(
                sa.select(jobs.c.id, jobs.c.runner, jobs.c.heartbeat_at).where(
                    jobs.c.status == JobStatus.RUNNING.value
                )
            ).all()
            dead = [
                str(r.id)
                for r in rows
                if not alive(r.runner or "") or (r.heartbeat_at is not None and r.heartbeat_at < horizon)
            ]
            for job_id in dead:
                c.execute(
                    sa.update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
                    .values(
                        status=JobStatus.FAILED.value,
                        finished_at=_now(),
                        error={
                            "type": "RunnerLost",
                            "message": "the server stopped while the job ran; submit it again",
                        },
                    )
                )
            return dead

        return self._run(work, write=True)
