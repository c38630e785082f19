"""What the rolling and sweep drivers share: the tasks' configuration, the shared features and the
evaluation of a prediction series (backtest and IC) in the driver."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.executors.base import Executor
from hikyuu_qlib.research import ResearchContext
from hikyuu_qlib.rolling.tasks import TaskResult, TrainTask
from hikyuu_qlib.workflow.config import WorkflowConfig

log = logging.getLogger(__name__)

#: The figures that compare two prediction series (group.name of the statistics document).
COMPARED = (
    "ic.ic",
    "ic.rank_ic",
    "ic.icir",
    "ic.rank_icir",
    "excess_return_with_cost.annualized_return_sum",
    "excess_return_with_cost.information_ratio",
    "excess_return_with_cost.max_drawdown_sum",
    "portfolio.total_return",
)


#: The layout of the shared features file (part of its name): one record batch, one chunk a column.
SHARED_LAYOUT = "ipc-1-batch"


def task_threads(config: WorkflowConfig) -> int:
    """Each task's LightGBM threads: the model's ``num_threads``, else 1 (tasks run side by side). The
    count is part of each task's config, so results never depend on the executor or the worker count."""
    return config.model.num_threads or 1


def task_config(config: WorkflowConfig, threads: int, **updates: Any) -> WorkflowConfig:
    """The config of one task: ``config`` with its thread count fixed, no rolling block and ``updates``."""
    model = config.model.model_copy(update={"num_threads": threads, **updates.pop("model", {})})
    return WorkflowConfig.model_validate(
        {
            **config.model_dump(mode="json"),
            "rolling": None,
            "model": model.model_dump(mode="json"),
            **{k: _json(v) for k, v in updates.items()},
        }
    )


def _json(value: Any) -> Any:
    from pydantic import BaseModel

    from hikyuu_qlib.domain.segments import Segments

    if isinstance(value, Segments):
        return {name: str(span) for name, span in value.items()}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def payload(
    ctx: ResearchContext,
    config: WorkflowConfig,
    data_version: str,
    tags: Mapping[str, str],
    score: Sequence[str] = ("test",),
    *,
    keep_degenerate: bool = False,
) -> dict[str, Any]:
    """The JSON payload of the task that trains ``config`` (its id: the config's run id)."""
    task = TrainTask(
        task_id=config.run_id(data_version),
        config=config.model_dump(mode="json"),
        tags=dict(tags),
        score=tuple(score),
        keep_degenerate=keep_degenerate,
        db=ctx.registry_url,
        settings=ctx.settings.model_dump(mode="json"),
    )
    return task.model_dump(mode="json")


def shared_features(
    ctx: ResearchContext, config: WorkflowConfig, span: DateRange
) -> tuple[pl.DataFrame, Path]:
    """The universe's Alpha158 features and label over ``span`` (every task's segments), computed once
    (through the feature cache), and where a file copy of them goes (named by a digest of the inputs).

    The frame is one chunk a column: every executor's tasks then see the same memory layout (the
    inline run's frame, the pool's memory-mapped file, Ray's object-store table), and a worker's Polars
    frame is a zero-copy view of the file's or the store's buffers."""
    from hikyuu_qlib.factors.pipeline import ENGINE_VERSION, compute_features

    features = ctx.features
    universe = ctx.universe(config.universe, span)
    frame = compute_features(features, universe, span, config.factors, label=True, cache=ctx.cache)
    frame = frame.rechunk()
    parts = (
        f"{features.source}|{features.data_version()}|{universe.fingerprint()}|{span}|{ENGINE_VERSION}"
        f"|{SHARED_LAYOUT}"
    )
    digest = hashlib.sha256(parts.encode()).hexdigest()[:24]
    return frame, ctx.settings.cache_disk_dir / "shared" / f"{digest}.arrow"


def run_tasks(executor: Executor, payloads: Sequence[dict[str, Any]], shared: Any) -> Iterator[TaskResult]:
    from hikyuu_qlib.rolling.worker import run_task

    yield from executor.run(run_task, payloads, shared)


def evaluate(
    ctx: ResearchContext, config: WorkflowConfig, preds: pl.DataFrame
) -> tuple[dict[str, Any], Any, pl.DataFrame]:
    """The backtest statistics document of ``preds`` (TopkDropout of the workflow), the result and the
    daily IC."""
    from hikyuu_qlib.backtest import run_topk_backtest
    from hikyuu_qlib.backtest.report import prediction_ic

    result = run_topk_backtest(preds, ctx.features, config.backtest)
    ic = prediction_ic(preds, ctx.features)
    return result.statistics(ctx.risk_free(), ic=ic), result, ic


def figures(statistics: Mapping[str, Any], names: Sequence[str] = COMPARED) -> dict[str, Any]:
    """``group.name`` figures of a statistics document (``None`` where it has none)."""
    out: dict[str, Any] = {}
    for name in names:
        group, _, key = name.partition(".")
        values = statistics.get(group)
        out[name] = values.get(key) if isinstance(values, Mapping) else None
    return out


def write_frame(frame: pl.DataFrame, path: Path) -> None:
    """Write a parquet file atomically (a reader never sees half of it)."""
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    frame.write_parquet(staging)
    staging.replace(path)
