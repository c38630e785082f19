"""What a job's worker process runs: one job, through the research use cases, recorded in the registry.

The runner (:mod:`.runner`) starts :func:`main` in a fresh process per job. The process dies with its
runner (Linux ``PR_SET_PDEATHSIG``), runs at a lower CPU priority than the server's request handling,
and records its progress, then its result or its error, in the job's row. An interrupt (the runner's
SIGINT on cancel or shutdown) lets the use case clean up (a training marks its model failed, a workflow
removes its staging directory); the runner then records the job cancelled or failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.errors import HQError, InvalidInputError
from hikyuu_qlib.domain.jobs import Job, JobStatus
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.ports import Progress
from hikyuu_qlib.registry.jobs import JobStore
from hikyuu_qlib.research import ResearchContext
from hikyuu_qlib.serialization import clean, flatten
from hikyuu_qlib.service.jobs.specs import (
    JOB_BODY,
    BacktestJob,
    EvaluateJob,
    TrainJob,
    WorkflowJob,
)
from hikyuu_qlib.service.lifecycle import die_with_parent
from hikyuu_qlib.settings import Settings

log = logging.getLogger(__name__)

#: Job processes yield the CPU to the server's request handling.
NICENESS = 10
#: Progress is written at most this often (seconds).
REPORT_EVERY_S = 0.5

Report = Callable[[float, str], None]


def job_dir(settings: Settings, job_id: str) -> Path:
    """Where a job writes its files (reports, predictions, workflow runs)."""
    return settings.home / "jobs" / job_id


def main(job_id: str, settings_doc: dict[str, Any]) -> None:
    """Entry point of a job's worker process. With tracing configured (the ``OTEL_*`` variables the server
    passes on), the job is one span ``job <kind>``, a child of the ``POST /v1/jobs`` request that queued it
    (the trace context stored with the job), and the parent of the job's registry, data-load and stage
    spans; they are exported before the process ends."""
    die_with_parent(signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    settings = Settings(**settings_doc)
    from hikyuu_qlib.observability.logs import configure_logging

    configure_logging(settings.log_level)
    from hikyuu_qlib.app import open_registry, open_telemetry
    from hikyuu_qlib.observability.tracing import attached_context
    from hikyuu_qlib.registry.jobs import JobStore

    # metrics of jobs are kept by the runner (it sees every outcome, a killed process's too)
    telemetry = open_telemetry(settings, metrics=False)
    try:
        with open_registry(settings=settings, sync=True, telemetry=telemetry).open() as registry:
            store = JobStore(registry)
            job = store.get(job_id)
            with (
                attached_context(job.trace_context),
                telemetry.span(f"job {job.kind.value}", {"hq.job.id": job_id, "hq.job.kind": job.kind.value}),
            ):
                _run_and_record(job, settings, store, telemetry)
    finally:
        telemetry.close()


def _run_and_record(job: Job, settings: Settings, store: JobStore, telemetry: Telemetry) -> None:
    """Run the job and record its outcome (or its failure) in its row."""
    job_id = job.id
    last = [0.0]

    def report(progress: float, stage: str) -> None:
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY_S or progress >= 1.0:
            last[0] = now
            store.report(job_id, progress, stage)

    try:
        result = run(job, settings, report, telemetry)
    except HQError as exc:
        log.warning("job %s failed: %s", job_id, exc)
        store.finish(job_id, JobStatus.FAILED, error={"type": type(exc).__name__, "message": str(exc)})
        _mark_span_failed(telemetry, type(exc).__name__)
        return
    except Exception as exc:
        log.exception("job %s failed", job_id)
        store.finish(
            job_id,
            JobStatus.FAILED,
            error={
                "type": "InternalError",
                "message": f"the job failed unexpectedly ({type(exc).__name__})",
            },
        )
        _mark_span_failed(telemetry, type(exc).__name__)
        return
    store.finish(job_id, JobStatus.SUCCEEDED, result=clean(result))


def _mark_span_failed(telemetry: Telemetry, error_type: str) -> None:
    """The current span (the job's, when traced) ends with status error."""
    if not telemetry.tracing.enabled:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, error_type))


def run(job: Job, settings: Settings, report: Report, telemetry: Telemetry | None = None) -> dict[str, Any]:
    """Run one job's use case and return its result document (its adapters record to ``telemetry``)."""
    body = JOB_BODY.validate_python(job.body)
    out = job_dir(settings, job.id)
    if isinstance(body, WorkflowJob):
        return _workflow(body, settings, out, report, telemetry)
    with ResearchContext.open(settings=settings, telemetry=telemetry) as ctx:
        if isinstance(body, TrainJob):
            return _train(body, ctx, report, job.id)
        if isinstance(body, EvaluateJob):
            return _evaluate(body, ctx, report)
        return _backtest(body, ctx, out, report)


def _stage_progress(report: Report, stage: str) -> Progress:
    def update(done: int, total: int, item: str) -> None:
        report(done / total if total else 0.0, stage)

    return update


#: The tag that names the job a model was trained by.
JOB_TAG = "job_id"


def _train(body: TrainJob, ctx: ResearchContext, report: Report, job_id: str) -> dict[str, Any]:
    from hikyuu_qlib.modelling.presets import ProcessorStep
    from hikyuu_qlib.modelling.service import TrainSpec, train_and_register

    if body.model.selecting():
        raise InvalidInputError(
            "model candidates and seeds (selection on valid) run in hq run, not a train job"
        )
    report(0.0, "features")
    members = ctx.universe(body.universe, body.segments.span())
    explicit = "processors" in body.model_fields_set  # else the preset's own processors
    spec = TrainSpec(
        body.model.name or f"{body.model.preset}-{members.name}",
        body.segments,
        preset=body.model.preset,
        seed=body.model.seed,
        num_threads=body.model.num_threads,
        params=dict(body.model.params),
        num_boost_round=body.num_boost_round,
        infer=tuple(ProcessorStep.of(p) for p in body.processors.infer) if explicit else None,
        learn=tuple(ProcessorStep.of(p) for p in body.processors.learn) if explicit else None,
        tags={JOB_TAG: job_id},
    )
    outcome = train_and_register(
        spec,
        store=ctx.features,
        universe=members,
        registry=ctx.registry,
        artifacts=ctx.artifacts,
        cache=ctx.cache,
        progress=_stage_progress(report, "boosting"),
    )
    return {
        "model_id": outcome.model.id,
        "metrics": outcome.metrics,
        "rounds": outcome.result.rounds,
        "best_iteration": outcome.result.best_iteration,
        "timings": outcome.timings,
    }


def _model_dates(ctx: ResearchContext, model_id: str, start: Any, end: Any) -> DateRange:
    record = ctx.registry.get(model_id)
    default = record.segments.get("test") or next(iter(record.segments.values()), None)
    if (start is None or end is None) and default is None:
        raise InvalidInputError("the model has no segments: give start and end")
    return DateRange.of(start or default.start, end or default.end)  # type: ignore[union-attr]


def _evaluate(body: EvaluateJob, ctx: ResearchContext, report: Report) -> dict[str, Any]:
    from hikyuu_qlib.modelling import service

    report(0.0, "evaluate")
    full = ctx.resolve_model(body.model)
    record = ctx.registry.get(full)
    dates = _model_dates(ctx, full, body.start, body.end)
    members = ctx.universe(body.universe or record.universe, dates)
    result = service.evaluate(
        full,
        predictor=ctx.predictor,
        store=ctx.features,
        universe=members,
        dates=dates,
        cache=ctx.cache,
    )
    return {
        "model_id": full,
        "universe": members.name,
        "dates": str(dates),
        "summary": result.summary,
        "yearly": result.yearly.to_dicts(),
        "errors": {code: str(err) for code, err in sorted(result.errors.items())},
    }


def _backtest(body: BacktestJob, ctx: ResearchContext, out: Path, report: Report) -> dict[str, Any]:
    from hikyuu_qlib.backtest import run_topk_backtest
    from hikyuu_qlib.backtest.report import prediction_ic, run_report

    full = ctx.resolve_model(body.model)
    record = ctx.registry.get(full)
    dates = DateRange.of(body.start, body.end)
    report(0.0, "predict")
    preds = ctx.predict(full, body.universe or record.universe, dates)
    if preds.height == 0:
        raise InvalidInputError(f"model {full} predicted nothing in {dates}")
    config = body.backtest
    report(0.4, "backtest")
    result = run_topk_backtest(preds, ctx.features, config)
    ic = prediction_ic(preds, ctx.features)
    statistics = result.statistics(ctx.risk_free(), ic=ic)
    report(0.8, "report")
    paths = run_report(
        out / "report",
        result,
        ic=ic,
        benchmark=config.benchmark,
        title=f"TopkDropout({config.topk}, {config.n_drop}) — model {full}",
        subtitle=ctx.source,
        statistics=statistics,
    )
    ctx.record_backtest(full, {"topk": config.topk, "n_drop": config.n_drop, **flatten(statistics)})
    return {
        "model_id": full,
        "days": result.daily.height,
        "statistics": statistics,
        "report": str(paths.html),
        "daily": str(paths.daily_parquet),
    }


def _workflow(
    body: WorkflowJob, settings: Settings, out: Path, report: Report, telemetry: Telemetry | None
) -> dict[str, Any]:
    from hikyuu_qlib.workflow.runner import run_workflow

    stages = ("data", "boosting")

    @contextmanager
    def progress(stage: str) -> Iterator[Progress]:
        report(stages.index(stage) / len(stages) if stage in stages else 0.5, stage)
        yield _stage_progress(report, stage)

    with ResearchContext.open(body.config.source, settings=settings, telemetry=telemetry) as ctx:
        result = run_workflow(body.config, ctx, force=body.force, out_root=out, progress=progress)
    return result.to_json()
