"""Use cases: train and register a model, predict with one, evaluate one. Plain functions, dependencies in.

``train_and_register`` records the model (created → training → trained; failed on error), stores the
model in its library's own format (:mod:`hikyuu_qlib.modelling.families`), a small JSON of the
processors (steps, fitted state, feature names) and one of the feature importance in the artifact store
(the record's ``model``, ``processors`` and ``importance`` artifacts), and the metrics of every segment
in the record (the test segment's also at the top level: ``ic``, ``icir``, ``rank_ic``, ``rank_icir``,
``mse_learn_label``, ``mse_raw_label``).
A degenerate model (one boosting round, or a test IC that is NaN or zero) is never recorded
``trained``: it ends ``failed`` with the reason in its ``failure`` tag, and :class:`DegenerateModelError`
is raised.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.errors import HQError, InvalidInputError
from hikyuu_qlib.domain.model import (
    IMPORTANCE_ARTIFACT,
    MODEL_ARTIFACT,
    PROCESSORS_ARTIFACT,
    Model,
    ModelStatus,
    ModelType,
)
from hikyuu_qlib.domain.segments import Segments
from hikyuu_qlib.factors.label import LABEL
from hikyuu_qlib.factors.pipeline import PartialFrame, compute_features_partial
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling import metrics as model_metrics
from hikyuu_qlib.modelling import streaming
from hikyuu_qlib.modelling.dataset import RAW_LABEL, PreparedData, labels, matrix, prepare, prepare_frame
from hikyuu_qlib.modelling.families import FitInput, FitResult, Fitted, family
from hikyuu_qlib.modelling.families.lightgbm import LightGBMModel
from hikyuu_qlib.modelling.importance import encode_importance
from hikyuu_qlib.modelling.predictor import LoadedModel, Predictor
from hikyuu_qlib.modelling.presets import QLIB_LGB_ALPHA158, ProcessorStep, default_threads, get_preset
from hikyuu_qlib.modelling.streaming import Bounded
from hikyuu_qlib.ports import Cache, FeatureSource, ModelFiles, ModelRecords, Progress
from hikyuu_qlib.signals import SignalRule

log = logging.getLogger(__name__)

#: The test segment's metrics also kept at the top level of a model's metrics.
TOP_LEVEL = ("ic", "icir", "rank_ic", "rank_icir", "mse_learn_label", "mse_raw_label")
#: A test IC smaller than this in magnitude is zero (constant scores leave ~1e-19 of rounding noise).
ZERO_IC = 1e-9


class DegenerateModelError(HQError):
    """Training ended with a model that cannot be used (see :func:`degenerate`); it is recorded failed."""

    def __init__(self, message: str, model_id: str | None = None) -> None:
        super().__init__(message)
        self.model_id = model_id


@dataclass(frozen=True)
class TrainSpec:
    """One training run. ``None`` fields take the preset's value; ``segments`` may be given as a mapping of
    ranges by name (made :class:`Segments`, which checks that they are ordered and disjoint)."""

    name: str
    segments: Segments
    preset: str = QLIB_LGB_ALPHA158
    seed: int = 0
    num_threads: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    num_boost_round: int | None = None
    early_stopping_rounds: int | None = None
    infer: tuple[ProcessorStep, ...] | None = None
    learn: tuple[ProcessorStep, ...] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    #: The features' name when they are not the preset's (a user's features file: ``file:NAME``).
    feature_set: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", Segments.of(self.segments))


@dataclass
class TrainOutcome:
    model: Model
    metrics: dict[str, Any]
    result: FitResult
    timings: dict[str, float]
    data: PreparedData | streaming.BlockDataset


def train_and_register(
    spec: TrainSpec,
    *,
    store: FeatureSource | None,
    universe: Universe,
    registry: ModelRecords,
    artifacts: ModelFiles,
    cache: Cache | None = None,
    progress: Progress | None = None,
    frame: pl.DataFrame | None = None,
    bounded: Bounded | None = None,
) -> TrainOutcome:
    """Features → dataset → LightGBM → metrics, recorded in the registry with its artifacts.

    The spec is checked first (see :func:`check_spec`): invalid input creates no registry record.
    ``frame``: the universe's features (Alpha158 and label) already computed over at least the spec's
    segments (rolling windows share one); without it they are computed (or read from ``cache``). With a
    ``frame`` the ``store`` may be ``None`` (a user's features file): the segments are checked against
    the frame's days and the record's ``source`` tag comes from ``spec.tags``.
    ``bounded``: a memory budget; when the universe does not fit it in memory, the features are built as
    date blocks on disk and the model is trained from them (:mod:`.streaming`; the same model). Only
    LightGBM trains from blocks; another family over the budget is refused before any record is made, and
    so is a budget that cannot hold LightGBM's own data (:class:`~hikyuu_qlib.memory.MemoryBudgetError`,
    stage ``train``).
    """
    if store is None:
        if frame is None:
            raise InvalidInputError("training needs a feature source or a features frame")
        check_frame_spec(spec, frame)
    else:
        check_spec(spec, store)
    preset = get_preset(spec.preset)
    infer = preset.infer if spec.infer is None else spec.infer
    learn = preset.learn if spec.learn is None else spec.learn
    threads = int(spec.num_threads or default_threads())
    params = preset.family_params(seed=spec.seed, num_threads=threads, overrides=spec.params)
    rounds = int(spec.num_boost_round or spec.params.get("num_boost_round") or preset.num_boost_round)
    stopping = int(
        spec.early_stopping_rounds or spec.params.get("early_stopping_rounds") or preset.early_stopping_rounds
    )
    hyper: dict[str, Any] = {
        "preset": preset.name,
        "params": {k: v for k, v in params.items() if k not in THREAD_PARAMS},
        "processors": {"infer": [s.to_json() for s in infer], "learn": [s.to_json() for s in learn]},
    }
    over_budget = (
        frame is None
        and store is not None
        and bounded is not None
        and not bounded.fits(store, universe, spec.segments.span())
    )
    if over_budget and preset.model_type is not ModelType.LIGHTGBM:
        raise InvalidInputError(
            f"{universe.name} over {spec.segments.span()} does not fit the memory budget in memory, and only "
            f"LightGBM trains from feature blocks on disk ({preset.name} is {preset.model_type.value}): "
            "raise --memory-budget or choose a smaller universe"
        )
    if over_budget:  # LightGBM's own data must fit too: refused before any record is made
        assert store is not None and bounded is not None
        bounded.check_training(store, universe, spec.segments, preset.feature_set, params)
    if preset.rounds:
        hyper.update(num_boost_round=rounds, early_stopping_rounds=stopping)
    if preset.process != "append":
        hyper["process"] = preset.process
    if preset.drop:
        hyper["drop"] = list(preset.drop)
    tags = {
        **({} if store is None else {"source": store.source, "data_version": store.data_version()}),
        "num_threads": str(threads),
        **spec.tags,
    }
    record = registry.save(
        Model.new(
            spec.name,
            preset.model_type,
            hyperparameters=hyper,
            feature_set=spec.feature_set or preset.feature_set,
            universe=universe.name,
            segments=spec.segments,
            label=preset.label,
            tags=tags,
        )
    )
    record = registry.transition(record.id, ModelStatus.TRAINING)
    try:
        timings: dict[str, float] = {}
        data: PreparedData | streaming.BlockDataset
        if over_budget:
            assert store is not None and bounded is not None
            data, result, found = _fit_bounded(spec, store, universe, bounded, preset.feature_set,
                                               (infer, learn), params, (rounds, stopping), progress, timings)  # fmt: skip
        else:
            started = time.perf_counter()
            if frame is None:
                assert store is not None
                data = prepare(
                    store,
                    universe,
                    spec.segments,
                    factor_set=preset.feature_set,
                    infer=infer,
                    learn=learn,
                    cache=cache,
                    process=preset.process,
                    drop=preset.drop,
                )
            else:
                span = spec.segments.span()
                rows = frame.filter(pl.col("datetime").is_between(span.start, span.end))
                data = prepare_frame(
                    rows, spec.segments, infer=infer, learn=learn, process=preset.process, drop=preset.drop
                )
            timings["features_s"] = time.perf_counter() - started
            result = fit_prepared(
                preset.model_type, data, params, spec.seed, threads, rounds, stopping, progress
            )
            timings["train_s"] = result.seconds
            started = time.perf_counter()
            found = segment_metrics(result.model, data, threads)
            timings["metrics_s"] = time.perf_counter() - started
        if result.best_iteration is not None:
            found["best_iteration"] = result.best_iteration
        if result.rounds is not None:
            found["rounds"] = result.rounds
        reason = degenerate(found)
        current = registry.get(record.id).with_metrics(model_metrics.finite_only(found))
        if reason is None:
            files = {
                MODEL_ARTIFACT: artifacts.put_bytes(result.model.to_bytes()),
                PROCESSORS_ARTIFACT: artifacts.put_bytes(data.state_bytes()),
            }
            importance = result.model.importance()
            if importance:
                files[IMPORTANCE_ARTIFACT] = artifacts.put_bytes(encode_importance(importance))
            done = current.with_artifacts(files).transition(ModelStatus.TRAINED)
        else:
            done = current.with_tags({"failure": reason}).transition(ModelStatus.FAILED)
        saved = registry.save(done)
    except BaseException as exc:
        if isinstance(exc, HQError | KeyboardInterrupt):  # expected: the caller reports it, no traceback
            log.warning("model %s marked failed", record.id)
            log.debug("training of model %s failed", record.id, exc_info=exc)
        else:
            log.exception("training of model %s failed", record.id)
        try:
            registry.transition(record.id, ModelStatus.FAILED)
        except Exception:  # the original error matters more
            log.exception("could not mark model %s failed", record.id)
        raise
    if reason is not None:
        log.error("model %s (%s v%s) is degenerate: %s; recorded as failed", saved.id, saved.name, saved.version,
                  reason)  # fmt: skip
        raise DegenerateModelError(
            f"model {saved.id} ({saved.name} v{saved.version}) is degenerate: {reason}. It is recorded as "
            "failed, not trained; widen the segments or the universe, or give more rounds",
            saved.id,
        )
    log.info("model %s (%s v%s) trained: test ic %s", saved.id, saved.name, saved.version, found.get("ic"))
    return TrainOutcome(saved, found, result, timings, data)


#: Thread counts: how a run was executed, not what it trained (kept out of the recorded parameters).
THREAD_PARAMS = frozenset({"num_threads", "nthread", "thread_count"})


def fit_prepared(
    model_type: Any,
    data: PreparedData,
    params: Mapping[str, Any],
    seed: int,
    threads: int,
    rounds: int,
    stopping: int,
    progress: Progress | None = None,
) -> FitResult:
    """Fit a family's model on a prepared dataset's learn view (train; valid for early stopping)."""
    train_rows = data.view("train")
    valid = None
    if "valid" in data.segments:
        valid_rows = data.view("valid")
        valid = (matrix(valid_rows, data.features), labels(valid_rows))
    inputs = FitInput(
        (matrix(train_rows, data.features), labels(train_rows)),
        valid,
        list(data.features),
        params,
        num_boost_round=rounds,
        early_stopping_rounds=stopping,
        seed=seed,
        num_threads=threads,
        progress=progress,
    )
    del train_rows, valid
    return family(model_type).fit(inputs)


def _fit_bounded(
    spec: TrainSpec,
    store: FeatureSource,
    universe: Universe,
    bounded: Bounded,
    feature_set: str,
    steps: tuple[tuple[ProcessorStep, ...], tuple[ProcessorStep, ...]],
    params: Mapping[str, Any],
    boosting: tuple[int, int],
    progress: Progress | None,
    timings: dict[str, float],
) -> tuple[streaming.BlockDataset, FitResult, dict[str, Any]]:
    """The features as date blocks on disk, the model trained from them and each segment's metrics."""
    infer, learn = steps
    rounds, stopping = boosting
    started = time.perf_counter()
    with bounded.stage("factors"):
        blocks = bounded.features(store, universe, spec.segments.span(), feature_set)
    timings["features_s"] = time.perf_counter() - started
    with bounded.stage("train"):
        data = streaming.BlockDataset.prepare(blocks, spec.segments, infer=infer, learn=learn)
        result = streaming.train_blocks(data, params, num_boost_round=rounds, early_stopping_rounds=stopping,
                                        scratch=bounded.scratch_root, progress=progress,
                                        budget=bounded.budget, rows=bounded.rows)  # fmt: skip
        timings["train_s"] = result.seconds
        started = time.perf_counter()
        found = streaming.segment_metrics_blocks(result.booster, data, params.get("num_threads"))
        if "test" in found:
            found.update({k: found["test"][k] for k in TOP_LEVEL})
        timings["metrics_s"] = time.perf_counter() - started
    fitted = LightGBMModel(result.booster, list(data.features))
    return data, FitResult(fitted, result.best_iteration, result.rounds, result.seconds, result.evals), found


def degenerate(metrics: Mapping[str, Any]) -> str | None:
    """Why a trained model is degenerate, or ``None``: one boosting round at its best iteration, or a test
    IC that is NaN (constant scores, no test days) or zero (below :data:`ZERO_IC` in magnitude: the
    rounding noise of constant scores). Without a test segment only the rounds count."""
    best = metrics.get("best_iteration")
    if isinstance(best, int) and best <= 1:
        return f"its best iteration is {best} (one boosting round)"
    test = metrics.get("test")
    if isinstance(test, Mapping):
        ic = test.get("ic")
        if not isinstance(ic, int | float) or not math.isfinite(ic):
            return "its test IC is NaN (constant scores or no test day with two scored stocks)"
        if abs(ic) < ZERO_IC:
            return f"its test IC is zero ({ic:.3g})"
    return None


def check_spec(spec: TrainSpec, store: FeatureSource) -> None:
    """Refuse a spec that cannot train before any work: bad numbers, or a segment without a trading day."""
    for name, value, least in (
        ("seed", spec.seed, 0),
        ("num_threads", spec.num_threads, 1),
        ("num_boost_round", spec.num_boost_round, 1),
        ("early_stopping_rounds", spec.early_stopping_rounds, 1),
    ):
        if value is not None and value < least:
            raise InvalidInputError(f"{name} must be at least {least}, got {value}")
    if "train" not in spec.segments:
        raise InvalidInputError("a training run needs a train segment")
    for name, span in spec.segments.items():
        if store.calendar(dates=span).len() == 0:
            raise InvalidInputError(f"the {name} segment {span} has no trading day in {store.source}")


def check_frame_spec(spec: TrainSpec, frame: pl.DataFrame) -> None:
    """:func:`check_spec` against a features frame: each segment must hold at least one of its days."""
    for name, value, least in (("seed", spec.seed, 0), ("num_threads", spec.num_threads, 1)):
        if value is not None and value < least:
            raise InvalidInputError(f"{name} must be at least {least}, got {value}")
    if "train" not in spec.segments:
        raise InvalidInputError("a training run needs a train segment")
    days = frame.get_column("datetime")
    for name, span in spec.segments.items():
        if not days.is_between(span.start, span.end).any():
            raise InvalidInputError(f"the {name} segment {span} has no day in the features frame")


def segment_metrics(model: Fitted, data: PreparedData, num_threads: int | None = None) -> dict[str, Any]:
    """Per segment: IC/ICIR/Rank IC/Rank ICIR against the raw label, ``mse_raw_label`` against the raw label
    and ``mse_learn_label`` against the learning label (the learn processors' output)."""
    out: dict[str, Any] = {}
    for name in data.segments:
        rows = data.view(name, "infer")
        scored = rows.select("datetime", "code", pl.col(RAW_LABEL).alias(model_metrics.LABEL)).with_columns(
            pl.Series(model_metrics.SCORE, model.predict(matrix(rows, data.features), num_threads))
        )
        learn = data.view(name, "learn").select("datetime", "code", pl.col(LABEL).alias("learn_label"))
        scored = scored.join(learn, on=["datetime", "code"], how="left")
        out[name] = model_metrics.signal_metrics(scored, learn_label="learn_label")
    if "test" in out:
        out.update({k: out["test"][k] for k in TOP_LEVEL})
    return out


def predict(
    model_id: str,
    *,
    predictor: Predictor,
    store: FeatureSource,
    universe: Universe,
    dates: DateRange,
    cache: Cache | None = None,
) -> pl.DataFrame:
    """``datetime, code, score`` from a registered model (loaded once, then from the predictor's LRU)."""
    return predictor.predict(model_id, store, universe, dates, cache=cache)


def predict_partial(
    model_id: str,
    *,
    predictor: Predictor,
    store: FeatureSource,
    universe: Universe,
    dates: DateRange,
    cache: Cache | None = None,
) -> PartialFrame:
    """:func:`predict` of the members that load; the failing ones are left out and returned with their errors."""
    return predictor.predict_partial(model_id, store, universe, dates, cache=cache)


def model_signals(
    model_id: str,
    rule: SignalRule,
    *,
    predictor: Predictor,
    store: FeatureSource,
    universe: Universe,
    dates: DateRange,
    cache: Cache | None = None,
) -> PartialFrame:
    """BUY/SELL/HOLD signals (:func:`hikyuu_qlib.signals.to_signals` under ``rule``) of a registered
    model's predictions for the members that load; the failing ones are left out with their errors."""
    from hikyuu_qlib.signals import to_signals

    scored = predict_partial(
        model_id, predictor=predictor, store=store, universe=universe, dates=dates, cache=cache
    )
    return dataclasses.replace(scored, frame=to_signals(scored.frame, rule))


@dataclass
class Evaluation:
    model: Model
    dates: DateRange
    summary: dict[str, Any]  # ic, icir, rank_ic, rank_icir, days, mse_raw_label, rows
    daily: pl.DataFrame  # datetime, ic, rank_ic, n
    yearly: pl.DataFrame  # year, ic, icir, rank_ic, rank_icir, days
    errors: dict[str, BaseException] = field(default_factory=dict)  # members left out: they failed to load


def evaluate(
    model_id: str,
    *,
    predictor: Predictor,
    store: FeatureSource,
    universe: Universe,
    dates: DateRange,
    cache: Cache | None = None,
    bounded: Bounded | None = None,
) -> Evaluation:
    """An IC report of a registered model over ``dates``: summary, per day and per year (raw label).

    Members that fail to load are left out of the report and listed in ``errors``. With ``bounded``, a
    universe that does not fit the budget in memory is evaluated block by block (the same report, the
    same ``errors``).
    """
    loaded: LoadedModel = predictor.load(model_id)
    if bounded is not None and not bounded.fits(store, universe, dates):
        blocks = bounded.features(
            store, universe, dates, loaded.record.feature_set or "alpha158", skip_failed=True
        )
        acc = streaming.SignalAccumulator()
        for frame in blocks.iter_frames(dates):
            scored = loaded.score(frame).join(
                frame.select("datetime", "code", pl.col(LABEL).alias(model_metrics.LABEL)),
                on=["datetime", "code"],
                how="left",
            )
            acc.add(scored, (model_metrics.LABEL,))
        daily = acc.daily_frame()
        summary = acc.summary({model_metrics.LABEL: "mse_raw_label"})
        return Evaluation(loaded.record, dates, summary, daily, yearly_ic(daily), dict(blocks.errors))
    features = compute_features_partial(
        store, universe, dates, loaded.record.feature_set or "alpha158", label=True, cache=cache
    )
    frame = features.frame
    scored = loaded.score(frame).join(
        frame.select("datetime", "code", pl.col(LABEL).alias(model_metrics.LABEL)),
        on=["datetime", "code"],
        how="left",
    )
    daily = model_metrics.daily_ic(scored)
    summary = model_metrics.signal_metrics(scored)
    return Evaluation(loaded.record, dates, summary, daily, yearly_ic(daily), features.errors)


def yearly_ic(daily: pl.DataFrame) -> pl.DataFrame:
    """``year, ic, rank_ic, icir, rank_icir, days`` from the daily IC of :func:`metrics.daily_ic`."""
    return (
        daily.with_columns(pl.col("datetime").dt.year().alias("year"))
        .group_by("year")
        .agg(
            pl.col("ic", "rank_ic").fill_nan(None).mean(),
            (pl.col("ic").fill_nan(None).mean() / pl.col("ic").fill_nan(None).std()).alias("icir"),
            (pl.col("rank_ic").fill_nan(None).mean() / pl.col("rank_ic").fill_nan(None).std()).alias(
                "rank_icir"
            ),
            pl.len().alias("days"),
        )
        .sort("year")
    )
