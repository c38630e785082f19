"""The worker side of a task: runs in a pool process or a Ray worker, never in the driver's state.

Each process keeps one research context per (source, registry URL) and the shared features frame it was
handed (read once per process: a memory-mapped Arrow file by path, or Ray's object-store copy).
A model already registered for the task's id (status trained or deployed) is reused: a task that ran
before a kill is scored again, not retrained. Scores always come from the registered model as loaded
from the registry, so a reused model and a fresh one give the same numbers bit for bit.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import polars as pl

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.rolling.tasks import TaskResult, TrainTask, frame_to_bytes

log = logging.getLogger(__name__)

_CONTEXTS: dict[tuple[str, str], Any] = {}
_FRAMES: dict[str, pl.DataFrame] = {}


def load_shared(shared: Any) -> tuple[pl.DataFrame, bool]:
    """The shared features, and whether this call read them: the frame itself (the inline executor),
    or a handle (:class:`~hikyuu_qlib.executors.base.SharedFrame`: a memory-mapped Arrow file, Ray's
    object-store copy) read once per process and kept for the process's next tasks."""
    if isinstance(shared, pl.DataFrame):
        return shared, False
    key = getattr(shared, "key", None)
    if not isinstance(key, str):
        raise TypeError(f"unexpected shared features of type {type(shared).__name__}")
    frame = _FRAMES.get(key)
    if frame is not None:
        return frame, False
    _FRAMES.clear()  # one shared frame per process: the previous run's is released
    frame = _FRAMES[key] = shared.load()
    return frame, True


def _context(task: TrainTask, source: str) -> Any:
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.settings import Settings

    key = (source, task.db)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        settings = Settings.model_validate(task.settings)
        ctx = _CONTEXTS[key] = ResearchContext.open(source, settings=settings, db=task.db)
    return ctx


def registered_model(registry: Any, run_id: str) -> str | None:
    """The id of a trained (or deployed) model tagged ``run_id``, if the registry has one."""
    from hikyuu_qlib.domain.model import ModelStatus
    from hikyuu_qlib.registry import ModelFilter

    for status in (ModelStatus.TRAINED, ModelStatus.DEPLOYED):
        page = registry.find(ModelFilter(status=status, tags={"run_id": run_id}), limit=1)
        if page.items:
            return str(page.items[0].id)
    return None


def run_task(payload: dict[str, Any], shared: Any) -> TaskResult:
    """Train (or reuse) the task's model and score its segments on the shared features."""
    from hikyuu_qlib.modelling.presets import ProcessorStep
    from hikyuu_qlib.modelling.service import DegenerateModelError, TrainSpec, train_and_register
    from hikyuu_qlib.workflow.config import WorkflowConfig

    started = time.perf_counter()
    task = TrainTask.model_validate(payload)
    task.check()
    config = WorkflowConfig.model_validate(task.config)
    ctx = _context(task, config.source)
    phases = {"open": time.perf_counter() - started}
    mark = time.perf_counter()
    frame, read_shared = load_shared(shared)
    phases["load"] = time.perf_counter() - mark
    mark = time.perf_counter()
    model_id = registered_model(ctx.registry, task.task_id)
    reused = model_id is not None
    if model_id is None:
        if config.model.selecting():
            raise InvalidInputError(
                "model candidates and seeds (selection on valid) run in hq run, not hq rolling"
            )
        segments = config.segments
        explicit = "processors" in config.model_fields_set  # else the preset's own processors
        spec = TrainSpec(
            config.model.name or f"{config.model.preset}-{config.universe}",
            segments,
            preset=config.model.preset,
            seed=config.model.seed,
            num_threads=config.model.num_threads,
            params=dict(config.model.params),
            infer=tuple(ProcessorStep.of(p) for p in config.processors.infer) if explicit else None,
            learn=tuple(ProcessorStep.of(p) for p in config.processors.learn) if explicit else None,
            tags={"run_id": task.task_id, "config_hash": config.config_hash(), **task.tags},
        )
        try:
            outcome = train_and_register(
                spec,
                store=ctx.features,
                universe=ctx.universe(config.universe, segments.span()),
                registry=ctx.registry,
                artifacts=ctx.artifacts,
                frame=frame,
            )
        except DegenerateModelError as exc:
            if not task.keep_degenerate or exc.model_id is None:
                raise
            record = ctx.registry.get(exc.model_id)
            seconds = round(time.perf_counter() - started, 3)
            phases["fit"] = time.perf_counter() - mark
            return TaskResult(task.task_id, exc.model_id, False, dict(record.metrics), {}, seconds,
                              os.getpid(), failure=record.tags.get("failure") or str(exc),
                              phases=_rounded(phases), loaded_shared=read_shared)  # fmt: skip
        model_id = outcome.model.id
    else:
        log.info("task %s: reusing model %s", task.label(), model_id)
    phases["fit"] = time.perf_counter() - mark
    mark = time.perf_counter()
    loaded = ctx.predictor.load(model_id)
    scores: dict[str, bytes] = {}
    for name in task.score:
        span = config.segments[name]
        rows = frame.filter(pl.col("datetime").is_between(span.start, span.end))
        scores[name] = frame_to_bytes(loaded.score(rows, config.model.num_threads))
    return TaskResult(
        task.task_id,
        model_id,
        reused,
        dict(loaded.record.metrics),
        scores,
        round(time.perf_counter() - started, 3),
        os.getpid(),
        phases=_rounded({**phases, "score": time.perf_counter() - mark}),
        loaded_shared=read_shared,
    )


def _rounded(phases: dict[str, float]) -> dict[str, float]:
    return {name: round(seconds, 3) for name, seconds in phases.items()}


def close_contexts() -> None:
    """Close the contexts this process opened (the inline executor runs tasks in the driver)."""
    while _CONTEXTS:
        _, ctx = _CONTEXTS.popitem()
        ctx.close()
    _FRAMES.clear()
