"""Run a workflow: features → train and register → predict the test segment → backtest → report.

Every output of a run lands in one directory, ``outputs.dir / <run id>``: the resolved ``config.yaml``,
``metrics.json`` (model metrics, backtest statistics, stage timings), ``predictions.parquet`` (or csv),
``model.json`` (the registry record, with its id) and ``report/`` (report.html, PNGs, daily frame).
The directory is assembled in a hidden staging directory next to it and renamed into place at the end,
so an interrupted run (Ctrl-C) leaves no half-written outputs; the registry marks an interrupted
training ``failed``.

Re-running an identical run (same config, same data version) reuses the registered model (found by its
``run_id`` tag) unless ``force`` is set; the features come from the cache either way. The result's
``cache`` holds the run's cache counters (requests, hits per tier, computations).

Stages, timed in ``metrics.json``'s ``timings`` and as ``hq_stage_duration_seconds`` (and traced as spans
``stage.<name>`` when tracing is on): ``load`` (open the feature source, its data version), ``factors``
(the training segments' features), ``train`` (the rest of training: fitting, segment metrics, registering;
with a reused model only the lookup, and ``factors`` is 0), ``predict``, ``backtest``, ``report``; and
``compile`` when numba's cache lacked the backtest's kernels (compiled in a child process before the
backtest: see :mod:`hikyuu_qlib.kernel_cache`).
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from hikyuu_qlib.domain import DateRange, InvalidInputError, Segments
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.memory import MemoryBudget, PeakRss
from hikyuu_qlib.modelling.importance import load_importance
from hikyuu_qlib.modelling.streaming import Bounded
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.ports import FeatureSource, Progress
from hikyuu_qlib.research import ResearchContext
from hikyuu_qlib.serialization import flatten, to_json_text
from hikyuu_qlib.workflow.config import WorkflowConfig

log = logging.getLogger(__name__)

#: Opens a progress callback for a named stage (the CLI passes Rich bars; the default is silent).
StageProgress = Callable[[str], Any]


@dataclass
class RunResult:
    run_id: str
    out_dir: Path
    model_id: str
    reused_model: bool
    metrics: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "out_dir": str(self.out_dir),
            "model_id": self.model_id,
            "reused_model": self.reused_model,
            "report": str(self.out_dir / "report" / "report.html"),
            "predictions": str(
                next(self.out_dir.glob("predictions.*"), self.out_dir / "predictions.parquet")
            ),
            "metrics": self.metrics,
            "timings": self.timings,
            "cache": self.cache,
        }


@contextmanager
def _silent(_: str) -> Iterator[Progress]:
    def update(done: int, total: int, item: str) -> None:
        return None

    yield update


class _Stages:
    """Times each stage, logs it, records it (``hq_stage_duration_seconds``), traces it and samples its
    peak RSS."""

    def __init__(self, telemetry: Telemetry, peaks: PeakRss) -> None:
        self.peaks = peaks
        self.timings: dict[str, float] = {}
        self._telemetry = telemetry
        self._parts: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        log.info("stage %s …", name)
        with self._telemetry.span(f"stage.{name}", {"hq.stage": name}), self.peaks.stage(name):
            started = time.perf_counter()
            yield
            seconds = time.perf_counter() - started
        for part, part_seconds in self._parts.items():  # parts measured inside this stage come first
            self._record(part, part_seconds)
            seconds -= part_seconds
        self._parts.clear()
        self._record(name, max(0.0, seconds))
        log.info("stage %s done in %.2fs", name, self.timings[name])

    def part(self, name: str, seconds: float) -> None:
        """Inside a stage: ``seconds`` of it were stage ``name`` (taken out of the enclosing stage's time)."""
        self._parts[name] = seconds

    def _record(self, name: str, seconds: float) -> None:
        self.timings[name] = round(seconds, 3)
        self._telemetry.metrics.stage(name, seconds)


def run_workflow(
    config: WorkflowConfig,
    ctx: ResearchContext,
    *,
    force: bool = False,
    out_root: Path | None = None,
    progress: StageProgress = _silent,
    memory_budget: str | int | None = None,
) -> RunResult:
    """Run ``config`` end to end in ``ctx`` (the caller opens it over ``config.source`` and closes it);
    see the module docstring for the outputs. Every stage reads the context's one feature source.

    ``memory_budget`` (default: the settings' ``memory_budget``, else a share of the RAM) bounds the
    run: when the universe does not fit it in memory, features, training, metrics and predictions go
    through date blocks on disk (:mod:`hikyuu_qlib.modelling.streaming`), with the same results."""
    from hikyuu_qlib.backtest import run_topk_backtest
    from hikyuu_qlib.backtest.report import prediction_ic, run_report
    from hikyuu_qlib.kernel_cache import warm_kernels

    budget = MemoryBudget.of(memory_budget if memory_budget is not None else ctx.settings.memory_budget)
    bounded = Bounded(budget, ctx.settings.cache_disk_dir)
    stages = _Stages(ctx.telemetry, bounded.peaks)
    cache_before = ctx.cache.counters()
    segments = config.segments
    whole = segments.span()
    with stages.stage("load"):
        features = ctx.features
        run_id = config.run_id(features.data_version())
    out_dir = (out_root or config.outputs.dir) / run_id
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=out_dir.parent))
    try:
        universe = ctx.universe(config.universe, whole)
        model_id = None if force else _registered(ctx, run_id)
        reused = model_id is not None
        with stages.stage("train"):
            factors_seconds = 0.0
            if model_id is None:
                model_id, factors_seconds = _train(
                    ctx, config, features, universe, segments, run_id, progress, bounded
                )
            stages.part("factors", factors_seconds)
        model = ctx.registry.get(model_id)
        with stages.stage("predict"):
            test = segments["test"]
            test_universe = ctx.universe(config.universe, test)
            if bounded.fits(features, test_universe, test):
                preds = ctx.predictor.predict(model_id, features, test_universe, test, cache=ctx.cache)
                _write_predictions(preds, staging, config.outputs.predictions)
            else:
                preds = _predict_bounded(ctx, model_id, features, test_universe, test, bounded, staging,
                                         config.outputs.predictions)  # fmt: skip
        bt = config.backtest
        with stages.stage("backtest"):
            started = time.perf_counter()
            if warm_kernels("topk"):  # numba's cache was cold: compiled in a child, timed on its own
                stages.part("compile", time.perf_counter() - started)
            result = run_topk_backtest(
                preds,
                features,
                bt,
            )
            ic = prediction_ic(preds, features)
            statistics = result.statistics(ctx.risk_free(), ic=ic)
        with stages.stage("report"):
            if config.outputs.report:
                run_report(
                    staging / "report",
                    result,
                    ic=ic,
                    benchmark=bt.benchmark,
                    title=f"{model.name} v{model.version} — TopkDropout({bt.topk}, {bt.n_drop})",
                    subtitle=f"run {run_id} on {ctx.source}",
                    statistics=statistics,
                    importance=load_importance(model, ctx.artifacts),
                    comparison=selection_table(model.metrics.get("selection")),
                )
            ctx.record_backtest(model_id, flatten(statistics))
        metrics = {"model": ctx.registry.get(model_id).metrics, "backtest": statistics}
        memory = {
            "budget_mb": round(budget.bytes / 2**20, 1),
            "path": "bounded" if bounded.used else "in_memory",
            "peak_rss_mb": bounded.peaks.to_json(),
        }
        _write_json(
            staging / "metrics.json",
            {**metrics, "timings": stages.timings, "memory": memory, "run_id": run_id},
        )
        _write_json(staging / "model.json", ctx.registry.get(model_id).to_json())
        (staging / "config.yaml").write_text(
            yaml.safe_dump(config.document(), sort_keys=False, allow_unicode=True)
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    cache = ctx.cache.counters().minus(cache_before).to_json()
    return RunResult(run_id, out_dir, model_id, reused, metrics, stages.timings, cache)


def _registered(ctx: ResearchContext, run_id: str) -> str | None:
    """The trained model of an earlier identical run, if the registry has one."""
    from hikyuu_qlib.domain.model import ModelStatus
    from hikyuu_qlib.registry import ModelFilter

    for status in (ModelStatus.TRAINED, ModelStatus.DEPLOYED):
        page = ctx.registry.find(ModelFilter(status=status, tags={"run_id": run_id}), limit=1)
        if page.items:
            log.info("reusing model %s of an identical earlier run", page.items[0].id)
            return page.items[0].id
    return None


def _train(
    ctx: ResearchContext,
    config: WorkflowConfig,
    features: FeatureSource,
    universe: Universe,
    segments: Segments,
    run_id: str,
    progress: StageProgress,
    bounded: Bounded | None = None,
) -> tuple[str, float]:
    """The id of the model trained and registered, and the seconds its features took."""
    from hikyuu_qlib.modelling.presets import ProcessorStep
    from hikyuu_qlib.modelling.service import TrainSpec

    explicit = "processors" in config.model_fields_set  # else the preset's own processors
    base = TrainSpec(
        config.model.name or f"{config.model.preset}-{config.universe}",
        segments,
        preset=config.model.preset,
        seed=config.model.seed,
        num_threads=config.model.num_threads,
        params=dict(config.model.params),
        infer=tuple(ProcessorStep.of(p) for p in config.processors.infer) if explicit else None,
        learn=tuple(ProcessorStep.of(p) for p in config.processors.learn) if explicit else None,
        tags={"run_id": run_id, "config_hash": config.config_hash()},
    )
    if not config.model.selecting():
        with progress("boosting") as bar:
            outcome = _register(ctx, features, universe)(base, progress=bar, bounded=bounded)
        return outcome.model.id, outcome.timings.get("features_s", 0.0)
    return _select(ctx, config, base, features, universe, progress, bounded)


def _register(ctx: ResearchContext, features: FeatureSource, universe: Universe) -> Callable[..., Any]:
    """``train_and_register`` bound to this run's feature source, universe, registry, artifacts and
    cache (a training and every selection candidate register the same way)."""
    from hikyuu_qlib.modelling.service import train_and_register

    return functools.partial(
        train_and_register,
        store=features,
        universe=universe,
        registry=ctx.registry,
        artifacts=ctx.artifacts,
        cache=ctx.cache,
    )


def _select(
    ctx: ResearchContext,
    config: WorkflowConfig,
    base: Any,
    features: FeatureSource,
    universe: Universe,
    progress: StageProgress,
    bounded: Bounded | None = None,
) -> tuple[str, float]:
    """Train every candidate with every seed; choose on the valid segment only (``model.select_on``).

    The features are computed once: in memory when they fit ``bounded``'s budget (or without one), else
    as a block set on disk that every candidate and seed trains from (built by the first, read by the
    others), so the selection stays within the budget as one training does.

    Only the chosen model keeps the run's ``run_id`` tag (so a rerun reuses it); the others are tagged
    ``selection_of``. The selection document (every configuration tried, its valid and test metrics as
    mean ± std over the seeds, the choice) is stored in the chosen model's ``metrics["selection"]``.
    """
    import dataclasses

    from hikyuu_qlib.factors.pipeline import compute_features
    from hikyuu_qlib.modelling.quality import mean_std, over_seeds
    from hikyuu_qlib.modelling.service import DegenerateModelError

    register = _register(ctx, features, universe)

    spec_model = config.model
    if "valid" not in base.segments:
        raise InvalidInputError("model.select_on: valid needs a valid segment")
    metric = spec_model.select_metric
    candidates = spec_model.candidates or [{}]
    started = time.perf_counter()
    from hikyuu_qlib.domain.model import ModelType
    from hikyuu_qlib.modelling.presets import default_threads, get_preset

    preset = get_preset(spec_model.preset)
    in_memory = bounded is None or bounded.fits(features, universe, base.segments.span())
    for overrides in candidates:  # every candidate is checked before the first one trains
        params = {**spec_model.params, **overrides}
        preset.check_params(params)
        if not in_memory and preset.model_type is ModelType.LIGHTGBM:
            assert bounded is not None  # LightGBM's data for these parameters must fit the budget
            threads = int(base.num_threads or default_threads())
            lgb = preset.family_params(seed=base.seed, num_threads=threads, overrides=params)
            bounded.check_training(features, universe, base.segments, preset.feature_set, lgb)
    frame = None
    if in_memory:
        frame = compute_features(
            features, universe, base.segments.span(), preset.feature_set, label=True, cache=ctx.cache
        )
    factors_seconds = time.perf_counter() - started
    tried: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    runs: list[list[tuple[str, dict[str, Any]]]] = []
    sharing: AbstractContextManager[None] = (
        nullcontext() if bounded is None or in_memory else bounded.sharing_rows()
    )
    with sharing:  # bounded: the row files are written by the first training, read by the others
        for index, overrides in enumerate(candidates):
            params = {**spec_model.params, **overrides}
            seeded: list[tuple[str, dict[str, Any]]] = []
            for k in range(spec_model.seeds):
                tags = {k2: v for k2, v in base.tags.items() if k2 != "run_id"}
                spec = dataclasses.replace(
                    base,
                    seed=base.seed + k,
                    params=params,
                    tags={**tags, "selection_of": base.tags["run_id"], "candidate": str(index)},
                )
                with progress(f"candidate {index + 1}/{len(candidates)} seed {spec.seed}") as bar:
                    try:
                        outcome = register(
                            spec, progress=bar, frame=frame, bounded=None if in_memory else bounded
                        )
                    except (
                        DegenerateModelError
                    ) as exc:  # recorded failed; the candidate is reported, not chosen
                        failures.append(
                            {"candidate": index, "seed": spec.seed, "model": exc.model_id, "reason": str(exc)}
                        )
                        continue
                if frame is None:  # the block set: built by the first run, read by the others
                    factors_seconds += outcome.timings.get("features_s", 0.0)
                seeded.append((outcome.model.id, outcome.metrics))
            runs.append(seeded)
            quality = over_seeds([m for _, m in seeded])
            tried.append(
                {
                    "candidate": index,
                    "params": overrides,
                    "models": [model_id for model_id, _ in seeded],
                    "seeds": [base.seed + k for k in range(spec_model.seeds)],
                    "valid": quality.get("valid", {}),
                    "test": quality.get("test", {}),
                    "select_value": mean_std([m["valid"].get(metric) for _, m in seeded])["mean"]
                    if len(seeded) == spec_model.seeds
                    else None,  # a candidate with a degenerate seed is not chosen
                }
            )
    scored = [t for t in tried if t["select_value"] is not None]
    if not scored:
        raise InvalidInputError(
            f"no candidate has a valid {metric} over all its seeds ({len(failures)} degenerate runs): widen the "
            "segments or the universe, or lighten the regularisation"
        )
    best = max(scored, key=lambda t: t["select_value"])
    seeded = runs[best["candidate"]]
    chosen_id = max(seeded, key=lambda r: r[1]["valid"].get(metric, float("-inf")))[0]
    selection = {
        "select_on": spec_model.select_on,
        "select_metric": metric,
        "chosen_candidate": best["candidate"],
        "chosen_model": chosen_id,
        "tried": tried,
        "failed": failures,
    }
    chosen = ctx.registry.get(chosen_id)
    from hikyuu_qlib.modelling.metrics import finite_only

    ctx.registry.save(
        chosen.with_tags({"run_id": base.tags["run_id"]}).with_metrics(
            {"selection": finite_only(_nulls_out(selection))}
        )
    )
    log.info(
        "selected candidate %d (valid %s %.4f), model %s",
        best["candidate"],
        metric,
        best["select_value"],
        chosen_id,
    )
    return chosen_id, factors_seconds


def selection_table(selection: Any) -> pl.DataFrame | None:
    """The configurations a selection tried, side by side: valid and test metrics as mean ± std."""
    if not isinstance(selection, dict) or not selection.get("tried"):
        return None
    from hikyuu_qlib.modelling.quality import SEED_METRICS, format_mean_std

    tried = selection["tried"]
    columns: dict[str, list[str]] = {"measure": ["params", "chosen"]}
    for segment in ("valid", "test"):
        columns["measure"] += [f"{segment} {m}" for m in SEED_METRICS]
    for t in tried:
        cells = [", ".join(f"{k}={v}" for k, v in t.get("params", {}).items()) or "(preset)"]
        cells.append("yes" if t.get("candidate") == selection.get("chosen_candidate") else "")
        for segment in ("valid", "test"):
            cells += [format_mean_std(t.get(segment, {}).get(m, {})) for m in SEED_METRICS]
        columns[f"candidate {t.get('candidate')}"] = cells
    return pl.DataFrame(columns)


def _nulls_out(doc: Any) -> Any:
    """The document with ``None`` values dropped from mappings (the registry keeps finite numbers)."""
    if isinstance(doc, dict):
        return {k: _nulls_out(v) for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [_nulls_out(v) for v in doc]
    return doc


def _predict_bounded(
    ctx: ResearchContext,
    model_id: str,
    features: FeatureSource,
    universe: Universe,
    test: DateRange,
    bounded: Bounded,
    out: Path,
    fmt: str,
) -> pl.DataFrame:
    """Predictions of the test segment block by block, written to Parquet as they come, then read back
    (``datetime, code, score``: small next to the features)."""
    from hikyuu_qlib.modelling.streaming import write_predictions_blocks

    model = ctx.predictor.load(model_id)
    blocks = bounded.features(features, universe, test, model.record.feature_set or "alpha158", label=False)
    path = out / "predictions.parquet"
    rows = write_predictions_blocks(model.score, blocks, test, path)
    log.info("predicted %d rows block by block", rows)
    preds = pl.read_parquet(path)
    if fmt == "csv":
        path.unlink()
        preds.write_csv(out / "predictions.csv")
    return preds


def _write_predictions(preds: pl.DataFrame, out: Path, fmt: str) -> None:
    if fmt == "csv":
        preds.write_csv(out / "predictions.csv")
    else:
        preds.write_parquet(out / "predictions.parquet")


def _write_json(path: Path, doc: Any) -> None:
    path.write_text(to_json_text(doc, indent=2))
