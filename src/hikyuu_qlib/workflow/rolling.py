"""Rolling retraining: one model per window, each scoring its test slice, stitched into one series.

The windows (:mod:`hikyuu_qlib.rolling.windows`) become typed tasks run by an executor; each task's id
is the run id of its config (its segments, the model, the thread count …) and the data version, and
its model is registered with that ``run_id`` tag and the tags ``rolling_id``, ``window`` and
``window_test``. The workflow's own static model (its segments, the test span) runs as one more task
for the comparison.

Outputs go to ``outputs.dir / rolling-<rolling id>``: ``tasks/`` (each finished window's test scores,
written when the window finishes), ``predictions.parquet`` (the stitched series), ``static_predictions.parquet``,
``windows.json``, ``metrics.json`` (rolling and static statistics, the comparison, timings),
``config.yaml`` and ``report/``. Re-running skips the windows whose scores are in ``tasks/`` and
reuses a model registered for a task, so a run killed at any point ends, when run again, with the same
predictions bit for bit (same seeds and thread counts). ``force`` starts over.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from hikyuu_qlib.domain import DataFormatError, DateRange
from hikyuu_qlib.executors.base import Executor
from hikyuu_qlib.research import ResearchContext
from hikyuu_qlib.rolling.tasks import TaskResult
from hikyuu_qlib.rolling.windows import RollingSpec, Window, make_windows
from hikyuu_qlib.serialization import to_json_text
from hikyuu_qlib.workflow import tasks as shared
from hikyuu_qlib.workflow.config import WorkflowConfig

log = logging.getLogger(__name__)

#: Called after each finished task: (done, total, what).
OnTask = Callable[[int, int, str], None]


@dataclass
class RollingResult:
    rolling_id: str
    out_dir: Path
    executor: str
    windows: list[dict[str, Any]]
    skipped: int  # windows finished by an earlier run
    statistics: dict[str, Any]  # rolling (and static) backtest statistics documents
    comparison: dict[str, dict[str, Any]]  # figure → {rolling, static}
    timings: dict[str, float] = field(default_factory=dict)
    #: the tasks run by this invocation, in the order they finished: where and how each ran
    task_runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def task_seconds(self) -> dict[str, float]:
        """The tasks' seconds summed: ``seconds`` (each task's whole time) and by the worker's phases."""
        total: dict[str, float] = {}
        for run in self.task_runs:
            for name, seconds in {"seconds": run["seconds"], **run["phases"]}.items():
                total[name] = round(total.get(name, 0.0) + seconds, 3)
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "rolling_id": self.rolling_id,
            "out_dir": str(self.out_dir),
            "executor": self.executor,
            "windows": self.windows,
            "skipped_windows": self.skipped,
            "predictions": str(self.out_dir / "predictions.parquet"),
            "report": str(self.out_dir / "report" / "report.html"),
            "statistics": self.statistics,
            "comparison": self.comparison,
            "timings": self.timings,
            "task_seconds": self.task_seconds,
            "task_runs": self.task_runs,
        }


def rolling_spec(config: WorkflowConfig) -> RollingSpec:
    return config.rolling or RollingSpec()


def rolling_id(config: WorkflowConfig, threads: int, data_version: str) -> str:
    """The rolling run's identity: the config hash, the rolling block, the thread count, the data."""
    spec = rolling_spec(config).model_dump_json()
    text = f"{config.config_hash()}|{spec}|{threads}|{data_version}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_windows(config: WorkflowConfig, ctx: ResearchContext) -> list[Window]:
    calendar = [d.date() for d in ctx.features.calendar().to_list()]
    return make_windows(rolling_spec(config), config.segments, calendar)


def run_rolling(
    config: WorkflowConfig,
    ctx: ResearchContext,
    executor: Executor,
    *,
    resume: bool = False,
    force: bool = False,
    out_root: Path | None = None,
    on_task: OnTask | None = None,
) -> RollingResult:
    """Run the rolling retraining of ``config`` on ``executor``; see the module docstring."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    spec = rolling_spec(config)
    threads = shared.task_threads(config)
    version = ctx.features.data_version()
    rid = rolling_id(config, threads, version)
    out_dir = (out_root or config.outputs.dir) / f"rolling-{rid}"
    done_dir = out_dir / "tasks"
    if force and out_dir.exists():
        shutil.rmtree(out_dir)
    done_dir.mkdir(parents=True, exist_ok=True)
    windows = plan_windows(config, ctx)
    log.info("rolling %s: %d windows of %d trading days (%s)", rid, len(windows), spec.step, spec.mode)
    test_span = DateRange(windows[0].test.start, windows[-1].test.end)
    configs = [shared.task_config(config, threads, segments=w.segments) for w in windows]
    payloads = [
        shared.payload(
            ctx, c, version, {"rolling_id": rid, "window": str(w.index), "window_test": str(w.test)}
        )
        for w, c in zip(windows, configs, strict=True)
    ]
    static_payload = None
    if spec.compare_static:
        static_segments = {**{k: v for k, v in config.segments.items() if k != "test"}, "test": test_span}
        static = shared.task_config(config, threads, segments=_segments(static_segments))
        static_payload = shared.payload(ctx, static, version, {"rolling_id": rid, "window": "static"})
    if resume:
        _abandon_stale(ctx, rid)
    todo = [p for p in [*payloads, *([static_payload] if static_payload else [])] if not _done(done_dir, p)]
    skipped = len(payloads) + (1 if static_payload else 0) - len(todo)
    if skipped:
        log.info("rolling %s: %d task(s) finished earlier are skipped", rid, skipped)
    timings["plan"] = round(time.perf_counter() - started, 3)
    results: dict[str, TaskResult] = {}
    task_runs: list[dict[str, Any]] = []
    if todo:
        mark = time.perf_counter()
        whole = DateRange(min(w.segments.span().start for w in windows), test_span.end)
        if static_payload is not None:
            whole = DateRange(min(whole.start, config.segments.span().start), whole.end)
        frame, path = shared.shared_features(ctx, config, whole)
        handle = executor.share(frame, path)
        del frame
        timings["features"] = round(time.perf_counter() - mark, 3)
        mark = time.perf_counter()
        for n, result in enumerate(shared.run_tasks(executor, todo, handle), start=1):
            shared.write_frame(result.frame("test"), done_dir / f"{result.task_id}.test.parquet")
            results[result.task_id] = result
            task_runs.append(result.run_doc())
            if on_task is not None:
                on_task(n, len(todo), result.task_id)
            log.info("rolling %s: task %d/%d done (model %s, %.1fs)", rid, n, len(todo), result.model_id,
                     result.seconds)  # fmt: skip
        timings["tasks"] = round(time.perf_counter() - mark, 3)
    mark = time.perf_counter()
    slices = [pl.read_parquet(done_dir / f"{p['task_id']}.test.parquet") for p in payloads]
    stitched = stitch(windows, slices)
    check_tiling(stitched, ctx.features.calendar(dates=test_span), test_span)
    shared.write_frame(stitched, out_dir / "predictions.parquet")
    statistics = {"rolling": shared.evaluate(ctx, config, stitched)}
    if static_payload is not None:
        static_preds = pl.read_parquet(done_dir / f"{static_payload['task_id']}.test.parquet")
        shared.write_frame(static_preds, out_dir / "static_predictions.parquet")
        statistics["static"] = shared.evaluate(ctx, config, static_preds)
    timings["backtest"] = round(time.perf_counter() - mark, 3)
    docs = {name: found[0] for name, found in statistics.items()}
    comparison = {
        name: {series: shared.figures(doc)[name] for series, doc in docs.items()} for name in shared.COMPARED
    }
    window_docs = [
        {"window": w.index, "task_id": p["task_id"], **{k: str(v) for k, v in w.segments.items()},
         "model_id": results[p["task_id"]].model_id if p["task_id"] in results else None}
        for w, p in zip(windows, payloads, strict=True)
    ]  # fmt: skip
    mark = time.perf_counter()
    if config.outputs.report:
        _report(out_dir, ctx, config, rid, statistics["rolling"], docs)
    timings["report"] = round(time.perf_counter() - mark, 3)
    timings["total"] = round(time.perf_counter() - started, 3)
    outcome = RollingResult(
        rid, out_dir, executor.name, window_docs, skipped, docs, comparison, timings, task_runs
    )
    _write(out_dir / "windows.json", window_docs)
    _write(out_dir / "metrics.json", {"rolling_id": rid, "statistics": docs, "comparison": comparison,
                                      "timings": timings})  # fmt: skip
    (out_dir / "config.yaml").write_text(
        yaml.safe_dump(config.document(), sort_keys=False, allow_unicode=True)
    )
    return outcome


def stitch(windows: list[Window], slices: list[pl.DataFrame]) -> pl.DataFrame:
    """The windows' test slices, in order, as one series; a slice with a day outside its window's test
    span is an error (it would overlap the next)."""
    parts = []
    for window, part in zip(windows, slices, strict=True):
        span = window.test
        outside = part.filter(~pl.col("datetime").is_between(span.start, span.end))
        if outside.height:
            raise DataFormatError(
                f"window {window.index}: {outside.height} score(s) outside its test span {span}"
            )
        parts.append(part)
    return pl.concat(parts, how="vertical").sort("datetime", "code", maintain_order=True)


def check_tiling(preds: pl.DataFrame, calendar: pl.Series, span: DateRange) -> None:
    """No overlap (one score per code and day) and no gap (a score on every trading day of ``span``)."""
    dup = preds.select(pl.struct("datetime", "code").is_duplicated().sum()).item()
    if dup:
        raise DataFormatError(f"the stitched predictions score {dup} (day, code) pair(s) twice")
    days = set(preds["datetime"].cast(pl.Date).unique().to_list())
    expected = set(calendar.cast(pl.Date).to_list())
    missing = sorted(expected - days)
    if missing:
        raise DataFormatError(f"the stitched predictions miss {len(missing)} trading day(s) of {span}, "
                              f"e.g. {', '.join(map(str, missing[:3]))}")  # fmt: skip
    extra = sorted(days - expected)
    if extra:
        raise DataFormatError(f"the stitched predictions have {len(extra)} day(s) outside {span}")


def _segments(spans: dict[str, DateRange]) -> Any:
    from hikyuu_qlib.domain.segments import Segments

    return Segments.of(spans)


def _done(done_dir: Path, payload: dict[str, Any]) -> bool:
    return (done_dir / f"{payload['task_id']}.test.parquet").is_file()


def _abandon_stale(ctx: ResearchContext, rid: str) -> None:
    """Mark failed the models of this rolling run left ``training`` by a driver that was killed."""
    from hikyuu_qlib.domain.model import ModelStatus
    from hikyuu_qlib.registry import ModelFilter

    page = ctx.registry.find(ModelFilter(status=ModelStatus.TRAINING, tags={"rolling_id": rid}), limit=500)
    for model in page.items:
        ctx.registry.save(model.with_tags({"failure": "abandoned: its run was interrupted"}).transition(
            ModelStatus.FAILED))  # fmt: skip
        log.warning("model %s was left training by an interrupted run: marked failed", model.id)


def _report(
    out_dir: Path,
    ctx: ResearchContext,
    config: WorkflowConfig,
    rid: str,
    rolling: tuple[dict[str, Any], Any, pl.DataFrame],
    docs: dict[str, Any],
) -> None:
    from hikyuu_qlib.backtest.report import run_report

    stats, result, ic = rolling
    staging = out_dir / ".report"
    shutil.rmtree(staging, ignore_errors=True)
    bt = config.backtest
    spec = rolling_spec(config)
    run_report(
        staging,
        result,
        ic=ic,
        benchmark=bt.benchmark,
        title=f"Rolling {config.model.preset} ({spec.mode}, step {spec.step}) — TopkDropout({bt.topk}, {bt.n_drop})",
        subtitle=f"rolling run {rid} on {ctx.source}",
        statistics=stats,
    )
    _write(staging / "comparison.json", {"rolling": docs.get("rolling"), "static": docs.get("static")})
    target = out_dir / "report"
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def _write(path: Path, doc: Any) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(to_json_text(doc, indent=2))
    staging.replace(path)
