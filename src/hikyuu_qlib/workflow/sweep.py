"""Sweeps: train several configurations of one workflow, register each, rank them on the valid segment.

Model parameters (LightGBM's, and ``seed``) make the trials: each is a task on the executor, its model
registered with the tags ``sweep_id`` and ``trial``. Backtest parameters (``topk``, ``n_drop``, the
costs) need no fit: every trial's scores are backtested for each of their values in the driver.

A trial whose model is degenerate (see :func:`~hikyuu_qlib.modelling.service.degenerate`) is registered
failed and listed with its reason, ranked last. Research honesty: the ranking reads the valid segment only (``select``, default ``valid.ic``); the
test figures are reported beside it and never used to choose.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.executors.base import Executor
from hikyuu_qlib.research import ResearchContext
from hikyuu_qlib.workflow import tasks as shared
from hikyuu_qlib.workflow.config import WorkflowConfig

log = logging.getLogger(__name__)

#: Backtest parameters a sweep varies in the driver (no model fit).
BACKTEST_PARAMS = ("topk", "n_drop", "open_cost", "close_cost", "min_cost")
#: The figures a leaderboard row shows for each of the valid and test segments.
ROW_FIGURES = {
    "ic": "ic.ic",
    "rank_ic": "ic.rank_ic",
    "ir": "excess_return_with_cost.information_ratio",
    "excess_return": "excess_return_with_cost.annualized_return_sum",
}
SELECTABLE = tuple(f"valid.{name}" for name in ROW_FIGURES)

Value = float | int | str | bool


def parse_param(text: str) -> tuple[str, list[Value]]:
    """``NAME=V1,V2,…`` → the name and its values (ints, floats, booleans or strings)."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise InvalidInputError(f"--param {text!r}: expected NAME=V1,V2,… e.g. num_leaves=64,128")
    return name, [_value(v.strip()) for v in values.split(",") if v.strip()]


def _value(text: str) -> Value:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def combinations(
    grid: Mapping[str, Sequence[Value]], search: Literal["grid", "random"], trials: int | None, seed: int
) -> list[dict[str, Value]]:
    """Every combination of ``grid`` (``grid``), or ``trials`` of them drawn without replacement by
    ``seed`` (``random``), in a stable order."""
    names = sorted(grid)
    every = [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]
    if search == "grid":
        return every
    if not trials or trials < 1:
        raise InvalidInputError("--search random needs --trials N (at least 1)")
    return random.Random(seed).sample(every, min(trials, len(every)))


@dataclass
class SweepResult:
    sweep_id: str
    select: str
    leaderboard: list[dict[str, Any]]  # best first by ``select`` (valid segment only)
    out_dir: Path
    executor: str
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep_id": self.sweep_id,
            "executor": self.executor,
            "select": self.select,
            "selection_rule": f"ranked by {self.select} (valid segment only); test figures are reported, "
            "never used to choose",
            "best": self.leaderboard[0] if self.leaderboard else None,
            "leaderboard": self.leaderboard,
            "out_dir": str(self.out_dir),
            "timings": self.timings,
        }


def sweep_id(config: WorkflowConfig, combos: Sequence[Mapping[str, Value]], data_version: str) -> str:
    text = f"{config.config_hash()}|{json.dumps(list(combos), sort_keys=True)}|{data_version}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_sweep(
    config: WorkflowConfig,
    ctx: ResearchContext,
    executor: Executor,
    grid: Mapping[str, Sequence[Value]],
    *,
    search: Literal["grid", "random"] = "grid",
    trials: int | None = None,
    seed: int = 0,
    select: str = "valid.ic",
    out_root: Path | None = None,
) -> SweepResult:
    """Train every model configuration of ``grid`` on ``executor``, backtest each for every backtest
    configuration, and rank the rows by ``select`` (a valid-segment figure)."""
    if select not in SELECTABLE:
        raise InvalidInputError(f"--select {select!r}: expected one of {', '.join(SELECTABLE)} (the valid "
                                "segment: test figures are never used to choose)")  # fmt: skip
    if not grid:
        raise InvalidInputError("a sweep needs at least one --param NAME=V1,V2,…")
    if "valid" not in config.segments or "test" not in config.segments:
        raise InvalidInputError("a sweep needs valid and test segments (it ranks on valid, reports test)")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    model_grid = {k: v for k, v in grid.items() if k not in BACKTEST_PARAMS}
    backtest_grid = {k: v for k, v in grid.items() if k in BACKTEST_PARAMS}
    model_combos = combinations(model_grid, search, trials, seed) if model_grid else [{}]
    backtest_combos = combinations(backtest_grid, "grid", None, seed) if backtest_grid else [{}]
    backtests = [_with_backtest(config, combo) for combo in backtest_combos]  # checked before any fit
    threads = shared.task_threads(config)
    version = ctx.features.data_version()
    sid = sweep_id(config, [*model_combos, *backtest_combos], version)
    out_dir = (out_root or config.outputs.dir) / f"sweep-{sid}"
    out_dir.mkdir(parents=True, exist_ok=True)
    payloads = []
    for i, combo in enumerate(model_combos):
        trial = shared.task_config(config, threads, model=_model_update(config, combo))
        tags = {"sweep_id": sid, "trial": str(i), "sweep_params": json.dumps(combo, sort_keys=True)}
        payloads.append(
            shared.payload(ctx, trial, version, tags, score=("valid", "test"), keep_degenerate=True)
        )
    frame, path = shared.shared_features(ctx, config, config.segments.span())
    handle = executor.share(frame, path)
    del frame
    timings["features"] = round(time.perf_counter() - started, 3)
    mark = time.perf_counter()
    results = {r.task_id: r for r in shared.run_tasks(executor, payloads, handle)}
    timings["tasks"] = round(time.perf_counter() - mark, 3)
    mark = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for i, (combo, p) in enumerate(zip(model_combos, payloads, strict=True)):
        result = results[p["task_id"]]
        if result.failure is not None:  # registered failed: listed, ranked last, never chosen
            empty = dict.fromkeys(ROW_FIGURES)
            rows.extend({"trial": i, "model_id": result.model_id, "status": "failed", "failure": result.failure,
                         "params": {**combo, **bt}, "valid": empty, "test": empty} for bt in backtest_combos)  # fmt: skip
            continue
        scores = {name: result.frame(name) for name in ("valid", "test")}
        for name, frame_ in scores.items():
            shared.write_frame(frame_, out_dir / f"trial-{i}.{name}.parquet")
        for bt_combo, bt_config in zip(backtest_combos, backtests, strict=True):
            row: dict[str, Any] = {"trial": i, "model_id": result.model_id, "status": "trained",
                                   "params": {**combo, **bt_combo}}  # fmt: skip
            for segment, preds in scores.items():
                stats = shared.evaluate(ctx, bt_config, preds)[0]
                found = shared.figures(stats, list(ROW_FIGURES.values()))
                row[segment] = {short: found[full] for short, full in ROW_FIGURES.items()}
            rows.append(row)
    timings["backtests"] = round(time.perf_counter() - mark, 3)
    group, _, figure = select.partition(".")
    rows.sort(key=lambda r: (_rank_key(r[group][figure]), r["trial"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    timings["total"] = round(time.perf_counter() - started, 3)
    result_ = SweepResult(sid, select, rows, out_dir, executor.name, timings)
    (out_dir / "leaderboard.json").write_text(json.dumps(result_.to_json(), indent=2, default=str))
    return result_


def _with_backtest(config: WorkflowConfig, combo: Mapping[str, Value]) -> WorkflowConfig:
    """``config`` with backtest parameters replaced, validated as the workflow file's are."""
    from pydantic import ValidationError

    doc = config.model_dump(mode="json")
    try:
        return WorkflowConfig.model_validate({**doc, "backtest": {**doc["backtest"], **combo}})
    except ValidationError as exc:
        raise InvalidInputError(f"--param {dict(combo)}: {exc.errors()[0]['msg']}") from None


def _model_update(config: WorkflowConfig, combo: Mapping[str, Value]) -> dict[str, Any]:
    params = {**config.model.params, **{k: v for k, v in combo.items() if k != "seed"}}
    update: dict[str, Any] = {"params": params}
    if "seed" in combo:
        update["seed"] = combo["seed"]
    return update


def _rank_key(value: Any) -> float:
    """Descending order, a missing or NaN figure last."""
    if isinstance(value, int | float) and value == value:
        return -float(value)
    return float("inf")
