"""The telemetry of one ``hq`` command: its span, and for batch commands its metrics file and push.

:func:`~hikyuu_qlib.cli.output.guarded` runs every command inside :func:`observed_command`:

- with tracing configured (``OTEL_*``, see :mod:`hikyuu_qlib.observability.tracing`) the command is one
  span ``hq <command>`` (its exit code an attribute), the parent of the registry, data-load and stage
  spans under it; the spans are exported before the process exits;
- a batch command (one with ``--metrics-file``: ``hq run``, ``hq model train``, ``hq backtest run``,
  ``hq data export-qlib``) is a job of kind ``run``, ``model_train``… in ``hq_jobs_total``,
  ``hq_job_duration_seconds``, ``hq_job_last_success_timestamp_seconds``; when ``--metrics-file`` is given
  its metrics are written there at the end (node_exporter's textfile format, atomically), and when
  ``HQ_PUSHGATEWAY_URL`` is set they are pushed there (job ``hq``, grouped by ``instance`` and ``kind``),
  whether the command succeeded or failed. Without either, nothing is recorded.

The command body reads its settings and telemetry with :func:`current` (the running command's, held in a
context variable for the time of the command).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from hikyuu_qlib.cli.errors import ExitCode
from hikyuu_qlib.observability.recording import JobStatus
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.settings import Settings, load_settings

log = logging.getLogger("hikyuu_qlib.cli")

_RUNNING: ContextVar[CommandRun | None] = ContextVar("hikyuu_qlib.command", default=None)


@dataclass
class CommandRun:
    """One command's settings (read once for it) and telemetry; ``kind`` names it in spans and, for a
    batch command, in the job metrics."""

    kind: str
    settings: Settings
    telemetry: Telemetry
    metrics_file: Path | None = None
    pushgateway: str | None = None

    @property
    def batch_metrics(self) -> bool:
        return self.telemetry.metrics.enabled


def current() -> CommandRun:
    """The running command's :class:`CommandRun` (outside a command: the settings, nothing recorded)."""
    run = _RUNNING.get()
    if run is not None:
        return run
    return CommandRun("library", load_settings(), Telemetry.disabled())


def start(name: str, kwargs: dict[str, Any], *, job: str | None = None) -> CommandRun:
    """Read the settings, check ``--metrics-file``, open the telemetry (see the module). ``job``: the kind
    of a batch command (else ``name`` names the command in its span, and no metrics are kept)."""
    from hikyuu_qlib.app import open_telemetry

    settings = load_settings()
    metrics_file = kwargs.get("metrics_file") if job is not None else None
    if metrics_file is not None:
        from hikyuu_qlib.observability.exposition import check_textfile_path

        check_textfile_path(metrics_file)
    pushgateway = settings.pushgateway_url if job is not None else None
    telemetry = open_telemetry(settings, metrics=metrics_file is not None or bool(pushgateway))
    return CommandRun(job or name, settings, telemetry, metrics_file, pushgateway)


def job_status(code: int) -> JobStatus:
    if code == ExitCode.OK:
        return "succeeded"
    return "cancelled" if code == ExitCode.INTERRUPTED else "failed"


@contextmanager
def observed_command(run: CommandRun) -> Iterator[dict[str, int]]:
    """Trace and time the command's body; the caller puts its exit code in the yielded dict. At the end the
    metrics are published (:func:`publish`): a command that succeeded but whose metrics file could not be
    written exits 1 (the error is logged; stdout already holds the command's output)."""
    outcome = {"exit_code": int(ExitCode.FAILURE)}
    token = _RUNNING.set(run)
    metrics = run.telemetry.metrics
    metrics.job_started(run.kind)
    started = time.perf_counter()
    try:
        with run.telemetry.span(f"hq {run.kind.replace('_', ' ')}", {"hq.command": run.kind}) as span:
            try:
                yield outcome
            finally:
                if span is not None:
                    from opentelemetry.trace import Status, StatusCode

                    code = outcome["exit_code"]
                    span.set_attribute("hq.exit_code", code)
                    span.set_status(Status(StatusCode.OK if code == 0 else StatusCode.ERROR))
    finally:
        metrics.job_finished(run.kind, job_status(outcome["exit_code"]), time.perf_counter() - started)
        try:
            publish(run)
        except Exception as exc:
            log.error("could not write the metrics file %s: %s", run.metrics_file, exc)
            if outcome["exit_code"] == ExitCode.OK:
                raise typer.Exit(ExitCode.FAILURE) from None
        finally:
            run.telemetry.close()
            _RUNNING.reset(token)


def publish(run: CommandRun) -> None:
    """Write ``--metrics-file`` and push to the Pushgateway (when asked). A failed write raises (the command
    fails: an operator relies on the file); a failed push is logged (the command's work stands)."""
    if not run.batch_metrics:
        return
    from hikyuu_qlib.observability.exposition import default_grouping, push, write_textfile
    from hikyuu_qlib.observability.metrics import PrometheusMetrics

    metrics = run.telemetry.metrics
    assert isinstance(metrics, PrometheusMetrics)
    if run.pushgateway:
        try:
            push(run.pushgateway, "hq", metrics, {**default_grouping(), "kind": run.kind})
        except OSError as exc:
            log.error("could not push metrics to the Pushgateway %s: %s", run.pushgateway, exc)
    if run.metrics_file is not None:
        write_textfile(run.metrics_file, metrics)


__all__ = ["CommandRun", "current", "observed_command", "publish", "start"]
