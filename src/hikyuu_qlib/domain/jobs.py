"""Long-running jobs of the HTTP service: what a job is, its kinds and its lifecycle.

queued → running → succeeded | failed | cancelled; a queued job may also be cancelled. A job found
``running`` by a runner whose process is gone (the server was killed) is marked failed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hikyuu_qlib.domain.errors import InvalidInputError, NotFoundError


class JobNotFoundError(NotFoundError):
    """A job id the registry does not hold."""


class JobKind(StrEnum):
    TRAIN = "train"
    EVALUATE = "evaluate"
    BACKTEST = "backtest"
    WORKFLOW = "workflow"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def parse(cls, text: str | JobStatus) -> JobStatus:
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise InvalidInputError(f"unknown job status {text!r}: expected one of {names}") from None

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class Job:
    """One job as the registry database records it. ``progress`` is a fraction (0..1) of the current
    ``stage``; ``result`` and ``error`` are JSON objects once the job finished."""

    id: str
    kind: JobKind
    status: JobStatus
    body: dict[str, Any]
    created_at: dt.datetime
    progress: float = 0.0
    stage: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    cancel_requested: bool = False
    runner: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the trace context (W3C headers) of the request that queued the job; None when it was not traced
    trace_context: dict[str, str] | None = None

    def timings(self) -> dict[str, float | None]:
        """Seconds queued and running (the latter so far, for a running job)."""
        now = dt.datetime.now(dt.UTC)
        queued = ((self.started_at or self.finished_at or now) - self.created_at).total_seconds()
        running = None
        if self.started_at is not None:
            running = ((self.finished_at or now) - self.started_at).total_seconds()
        return {"queued_s": round(queued, 3), "running_s": None if running is None else round(running, 3)}
