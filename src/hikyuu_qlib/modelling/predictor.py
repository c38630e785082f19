"""Predictions from registered models, with an LRU of loaded models and cached prediction frames.

A loaded model is kept in the cache's memory tier (through the :class:`~hikyuu_qlib.ports.Cache` port)
under ``(id, updated_at, artifact sha256)``; the predictor keeps at most ``capacity`` of them, least
recently used out. Each prediction reads the record (the registry, or the registry's cache) and looks
its key up: a record that changed since (new artifact, any update) misses, so the stale entry is dropped
and the model reloaded. Nothing is read from the artifact store on a hit.

With a cache, a prediction frame is cached too, keyed by the model id, the record's ``updated_at``, the
source and its data version, the universe's spans and the dates; predictions from partial features (some
codes failed to load) are never kept.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import polars as pl

from hikyuu_qlib.cache.codec import FRAME
from hikyuu_qlib.cache.keys import booster_key, prediction_key
from hikyuu_qlib.cache.values import BOOSTER
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.cache import CacheKey
from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import PROCESSORS_ARTIFACT, Model
from hikyuu_qlib.factors.pipeline import PartialFrame, compute_features, compute_features_partial
from hikyuu_qlib.factors.processors import ProcessorChain
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling.dataset import decode_state, matrix, qlib_order
from hikyuu_qlib.modelling.families import Fitted, family
from hikyuu_qlib.modelling.presets import ProcessorStep
from hikyuu_qlib.modelling.qlib_form import PREDICTION_SCHEMA
from hikyuu_qlib.ports import Cache, FeatureSource, ModelFiles, ModelRecords

log = logging.getLogger(__name__)

LoadedKey = tuple[str, str, str]


@dataclass(frozen=True)
class LoadedModel:
    """A fitted model with what it needs to score raw features: feature names and fitted infer processors.
    ``booster`` is the family's model (:class:`~hikyuu_qlib.modelling.families.Fitted`)."""

    record: Model
    booster: Fitted
    features: list[str]
    infer_steps: list[ProcessorStep]
    infer_chain: ProcessorChain

    def score(self, frame: pl.DataFrame, num_threads: int | None = None) -> pl.DataFrame:
        """``datetime, code, score`` for the rows of a raw features frame, in (datetime, code) order."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"features frame lacks {len(missing)} model feature(s), e.g. {missing[:3]}"
            )
        ordered = qlib_order(frame)
        processed = self.infer_chain.transform(ordered) if self.infer_chain.steps else ordered
        scores = self.booster.predict(matrix(processed, self.features), num_threads)
        return ordered.select(
            pl.col("datetime").cast(PREDICTION_SCHEMA["datetime"]),
            pl.col("code"),
            pl.Series("score", scores, dtype=pl.Float64),
        )


def cache_key(model: Model) -> LoadedKey:
    if model.artifact is None:
        raise InvalidInputError(
            f"model {model.id} has no artifact (status {model.status.value}): train it first"
        )
    return (model.id, model.updated_at.isoformat(), model.artifact.sha256)


def _memory_cache() -> Cache:
    from hikyuu_qlib.cache.memory import MemoryTier
    from hikyuu_qlib.cache.tiered import TieredCache

    return TieredCache(memory=MemoryTier(1 << 40))  # the predictor's capacity bounds it


class Predictor:
    """Scores from registered models; keeps up to ``capacity`` loaded models (least recently used out)
    in ``cache`` (default: a private in-memory one)."""

    def __init__(
        self,
        registry: ModelRecords,
        artifacts: ModelFiles,
        *,
        capacity: int = 8,
        num_threads: int | None = None,
        cache: Cache | None = None,
    ) -> None:
        if capacity < 1:
            raise InvalidInputError(f"capacity must be >= 1, got {capacity}")
        self._registry = registry
        self._artifacts = artifacts
        self._capacity = capacity
        self._num_threads = num_threads
        self._cache = cache if cache is not None else _memory_cache()
        self._lock = threading.Lock()
        self._models: OrderedDict[LoadedKey, CacheKey] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def load(self, model_id: str) -> LoadedModel:
        """The loaded model for the record as it is now (from the cache when the record is unchanged)."""
        record = self._registry.get(model_id)
        key = cache_key(record)
        assert record.artifact is not None
        cached = booster_key(record.id, record.updated_at, record.artifact.sha256)
        with self._lock:
            stale = [k for k in self._models if k[0] == record.id and k != key]
            for old in stale:
                self._cache.delete(self._models.pop(old))
        fresh = False

        def load() -> LoadedModel:
            nonlocal fresh
            fresh = True
            return self._load(record)

        loaded: LoadedModel = self._cache.get_or_compute(cached, load, BOOSTER)
        with self._lock:
            if fresh:
                self.misses += 1
            else:
                self.hits += 1
        with self._lock:
            self._models[key] = cached
            self._models.move_to_end(key)
            while len(self._models) > self._capacity:
                evicted, old_key = self._models.popitem(last=False)
                self._cache.delete(old_key)
                log.debug("evicted model %s from the cache", evicted[0])
        return loaded

    def _load(self, record: Model) -> LoadedModel:
        assert record.artifact is not None
        ref = record.artifacts.get(PROCESSORS_ARTIFACT)
        features: list[str] = []
        steps: list[ProcessorStep] = []
        chain = ProcessorChain([])
        if ref is not None:
            steps, features, chain = decode_state(self._artifacts.get_bytes(ref))
        booster = family(record.model_type).load(self._artifacts.get_bytes(record.artifact), features)
        if not features:  # a LightGBM model stored without its processors names its features itself
            features = list(booster.native.feature_name())
        log.info("loaded model %s (%s, %d features)", record.id, record.model_type.value, len(features))
        return LoadedModel(record, booster, features, steps, chain)

    def cached(self) -> list[LoadedKey]:
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            for key in self._models.values():
                self._cache.delete(key)
            self._models.clear()

    def predict_frame(self, model_id: str, features: pl.DataFrame) -> pl.DataFrame:
        """Scores for an already computed raw features frame."""
        return self.load(model_id).score(features, self._num_threads)

    def predict(
        self,
        model_id: str,
        store: FeatureSource,
        universe: Universe,
        dates: DateRange,
        *,
        cache: Cache | None = None,
    ) -> pl.DataFrame:
        """``datetime, code, score`` for each date's members of ``universe`` within ``dates`` (with
        ``cache``, the features and the scores are cached)."""
        model = self.load(model_id)

        def scores() -> pl.DataFrame:
            frame = compute_features(
                store, universe, dates, model.record.feature_set or "alpha158", label=False, cache=cache
            )
            return model.score(frame, self._num_threads)

        if cache is None:
            return scores()
        return cache.get_or_compute(_prediction_key(model.record, store, universe, dates), scores, FRAME)

    def predict_partial(
        self,
        model_id: str,
        store: FeatureSource,
        universe: Universe,
        dates: DateRange,
        *,
        cache: Cache | None = None,
    ) -> PartialFrame:
        """:meth:`predict` of the members that load; the others are left out, with their errors."""
        model = self.load(model_id)
        key = None if cache is None else _prediction_key(model.record, store, universe, dates)
        if cache is not None and key is not None:
            found = cache.get(key, FRAME)
            if found is not None:
                return PartialFrame(found)
        features = compute_features_partial(
            store, universe, dates, model.record.feature_set or "alpha158", label=False, cache=cache
        )
        scores = model.score(features.frame, self._num_threads)
        if cache is not None and key is not None and not features.errors:
            cache.put(key, scores, FRAME)
        return PartialFrame(scores, features.errors)


def _prediction_key(record: Model, store: FeatureSource, universe: Universe, dates: DateRange) -> CacheKey:
    return prediction_key(
        store.source,
        store.data_version(),
        model_id=record.id,
        updated_at=record.updated_at,
        universe=universe.fingerprint(),
        dates=dates,
    )


def write_predictions(frame: pl.DataFrame, path: str, fmt: str | None = None) -> str:
    """Write predictions as Parquet or CSV (by ``fmt`` or the file's suffix); returns the format used."""
    kind = (fmt or path.rsplit(".", 1)[-1]).lower()
    if kind in ("parquet", "pq"):
        frame.write_parquet(path)
        return "parquet"
    if kind == "csv":
        frame.write_csv(path)
        return "csv"
    raise InvalidInputError(f"unknown predictions format {kind!r}: expected parquet or csv")


def empty_predictions() -> pl.DataFrame:
    return pl.DataFrame(schema=PREDICTION_SCHEMA)
