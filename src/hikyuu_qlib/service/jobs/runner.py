"""The job runner: claims queued jobs from the registry database and runs each in its own process.

One runner per ``hq serve`` (in its main process, on a thread: never on an event loop). Every
``poll`` seconds it reaps finished processes, heartbeats its running jobs, stops those whose cancel was
requested, and starts queued jobs while fewer than ``slots`` run. On start it marks failed the jobs that a
dead runner left ``running`` (a ``hq serve`` killed with SIGKILL). On stop it interrupts its running jobs
(SIGINT: the use cases clean up), kills those still alive after the grace period, and records them failed:
no job is left ``running`` and none is half-written.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from hikyuu_qlib.domain.jobs import JobStatus
from hikyuu_qlib.observability.recording import Metrics
from hikyuu_qlib.registry.jobs import JobStore, runner_name
from hikyuu_qlib.registry.sync import ModelRegistry
from hikyuu_qlib.service.jobs.work import NICENESS
from hikyuu_qlib.service.lifecycle import lower_priority, pid_alive
from hikyuu_qlib.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class _Running:
    process: BaseProcess
    ready: Any  # a multiprocessing Event the job sets once its own code runs (it then handles SIGINT)
    kind: str = ""
    started: float = 0.0  # time.monotonic() when it was claimed
    cancelling: float | None = None  # when the cancel was seen


def runner_alive(runner: str) -> bool:
    """Whether the runner ``host:pid`` may still be alive (a process of another host is assumed alive;
    its heartbeat decides)."""
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return bool(runner)
    return pid_alive(int(pid))


class JobRunner:
    """Runs the jobs of one registry; ``start()`` then ``stop()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        poll: float = 0.25,
        interrupt_grace: float = 10.0,
        metrics: Metrics | None = None,
    ) -> None:
        """``metrics``: where the jobs are counted (``hq_jobs_total``, ``hq_jobs_running``,
        ``hq_job_duration_seconds``, ``hq_job_last_success_timestamp_seconds`` by job kind): the runner sees
        every outcome, that of a job whose process was killed too."""
        self._settings = settings
        self._metrics = metrics if metrics is not None else Metrics()
        self._poll = poll
        self._interrupt_grace = interrupt_grace
        self._slots = settings.api_job_workers
        self._registry: ModelRegistry | None = None
        self._store: JobStore | None = None
        self._running: dict[str, _Running] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._name = runner_name()
        self._context = multiprocessing.get_context("spawn")

    def start(self) -> JobRunner:
        from hikyuu_qlib.app import open_registry

        self._registry = open_registry(settings=self._settings, sync=True).open()
        self._store = JobStore(self._registry)
        lost = self._store.recover(runner_alive)
        if lost:
            log.warning("marked %d job(s) failed: their server stopped while they ran: %s", len(lost), lost)
            self._fail_models_of(lost)
        self._thread = threading.Thread(target=self._loop, name="hq-job-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming, interrupt running jobs, wait up to ``grace`` seconds, kill what is left."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        deadline = time.monotonic() + (self._interrupt_grace if grace is None else grace)
        for running in self._running.values():
            _interrupt(running)
        for job_id, running in list(self._running.items()):
            running.process.join(max(0.0, deadline - time.monotonic()))
            if running.process.is_alive():
                running.process.kill()
                running.process.join(5)
            self._settle(job_id, running, shutting_down=True)
            self._count_finished(job_id, running)
        self._running.clear()
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def _fail_models_of(self, job_ids: list[str]) -> None:
        """Mark failed the models that lost jobs left in training (found by their job tag)."""
        from hikyuu_qlib.domain.model import ModelStatus
        from hikyuu_qlib.domain.queries import ModelFilter
        from hikyuu_qlib.service.jobs.work import JOB_TAG

        assert self._registry is not None
        for job_id in job_ids:
            for status in (ModelStatus.CREATED, ModelStatus.TRAINING):
                for model in self._registry.find(ModelFilter(status=status, tags={JOB_TAG: job_id})).items:
                    self._registry.transition(model.id, ModelStatus.FAILED)
                    log.warning("model %s of lost job %s marked failed", model.id, job_id)

    @property
    def store(self) -> JobStore:
        assert self._store is not None, "start() the runner first"
        return self._store

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:
                log.exception("job runner tick failed; retrying")
            self._stopping.wait(self._poll)

    def _tick(self) -> None:
        store = self.store
        for job_id, running in list(self._running.items()):
            if not running.process.is_alive():
                running.process.join()
                self._settle(job_id, running)
                del self._running[job_id]
                self._count_finished(job_id, running)
        for job_id in store.heartbeat(list(self._running)):
            running = self._running[job_id]
            if running.cancelling is None:
                log.info("cancelling job %s", job_id)
                _interrupt(running)
                running.cancelling = time.monotonic()
            elif time.monotonic() - running.cancelling > self._interrupt_grace:
                running.process.kill()
        while len(self._running) < self._slots and not self._stopping.is_set():
            job = store.claim(self._name)
            if job is None:
                break
            ready = self._context.Event()
            process = self._context.Process(
                target=_job_main,
                args=(job.id, self._settings.model_dump(mode="json"), ready),
                name=f"hq-job-{job.id}",
                daemon=False,
            )
            process.start()
            lower_priority(process.pid or 0, NICENESS)  # its imports too, not only its work
            log.info("job %s (%s) started in process %s", job.id, job.kind.value, process.pid)
            self._running[job.id] = _Running(process, ready, job.kind.value, time.monotonic())
            self._metrics.job_started(job.kind.value)

    def _count_finished(self, job_id: str, running: _Running) -> None:
        """Count a job whose process ended, with the status its row records."""
        try:
            job = self.store.find(job_id)
        except Exception:  # the database is away: the job is counted as failed rather than lost
            log.warning("could not read job %s back to count it", job_id, exc_info=True)
            job = None
        status = job.status.value if job is not None and job.status.finished else "failed"
        self._metrics.job_finished(running.kind, status, time.monotonic() - running.started)  # type: ignore[arg-type]

    def _settle(self, job_id: str, running: _Running, *, shutting_down: bool = False) -> None:
        """Record the outcome of a job whose process ended without recording one itself."""
        store = self.store
        job = store.find(job_id)
        if job is None or job.status is not JobStatus.RUNNING:
            return
        code = running.process.exitcode
        if job.cancel_requested:
            store.finish(job_id, JobStatus.CANCELLED, error={"type": "Cancelled", "message": "cancelled"})
        elif shutting_down:
            store.finish(
                job_id,
                JobStatus.FAILED,
                error={
                    "type": "Interrupted",
                    "message": "the server shut down while the job ran; submit it again",
                },
            )
        else:
            store.finish(
                job_id,
                JobStatus.FAILED,
                error={"type": "WorkerDied", "message": f"the job's process ended with exit code {code}"},
            )


def _interrupt(running: _Running) -> None:
    """SIGINT to a job whose own code runs (its use case cleans up); SIGTERM to a job process still
    starting (the interpreter importing: it has done nothing yet, and SIGINT there would only print a
    traceback). Either way the job is then settled as cancelled or interrupted."""
    process = running.process
    if not process.is_alive() or process.pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        if running.ready.is_set():
            os.kill(process.pid, signal.SIGINT)
        else:
            os.kill(process.pid, signal.SIGTERM)


def _job_main(job_id: str, settings_doc: dict[str, Any], ready: Any) -> None:
    try:
        ready.set()
        from hikyuu_qlib.service.jobs.work import main

        main(job_id, settings_doc)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
