"""Predictions from registered models, with an LRU of loaded models.

A loaded model is cached under ``(id, updated_at, artifact sha256)``. Each prediction reads the record
(one indexed row) and looks its key up: a record that changed since (new artifact, any update) misses,
so the stale entry is dropped and the model reloaded. Nothing is read from the database or the artifact
store beyond that one row on a hit: a model is parsed once, not on every prediction.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import polars as pl

from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.domain.model import PROCESSORS_ARTIFACT, Model
from hikyuu_qlib.factors.cache import FeatureCache
from hikyuu_qlib.factors.pipeline import PartialFrame, compute_features, compute_features_partial
from hikyuu_qlib.factors.processors import ProcessorChain
from hikyuu_qlib.factors.universe import Universe
from hikyuu_qlib.modelling import trainer
from hikyuu_qlib.modelling.dataset import decode_state, matrix, qlib_order
from hikyuu_qlib.modelling.presets import ProcessorStep
from hikyuu_qlib.modelling.qlib_form import PREDICTION_SCHEMA
from hikyuu_qlib.ports import FeatureSource, ModelFiles, ModelRecords

log = logging.getLogger(__name__)

CacheKey = tuple[str, str, str]


@dataclass(frozen=True)
class LoadedModel:
    """A booster with what it needs to score raw features: feature names and fitted infer processors."""

    record: Model
    booster: Any
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
        scores = trainer.predict(self.booster, matrix(processed, self.features), num_threads)
        return ordered.select(
            pl.col("datetime").cast(PREDICTION_SCHEMA["datetime"]),
            pl.col("code"),
            pl.Series("score", scores, dtype=pl.Float64),
        )


def cache_key(model: Model) -> CacheKey:
    if model.artifact is None:
        raise InvalidInputError(
            f"model {model.id} has no artifact (status {model.status.value}): train it first"
        )
    return (model.id, model.updated_at.isoformat(), model.artifact.sha256)


class Predictor:
    """Scores from registered models; keeps up to ``capacity`` loaded models (least recently used out)."""

    def __init__(
        self,
        registry: ModelRecords,
        artifacts: ModelFiles,
        *,
        capacity: int = 8,
        num_threads: int | None = None,
    ) -> None:
        if capacity < 1:
            raise InvalidInputError(f"capacity must be >= 1, got {capacity}")
        self._registry = registry
        self._artifacts = artifacts
        self._capacity = capacity
        self._num_threads = num_threads
        self._lock = threading.Lock()
        self._models: OrderedDict[CacheKey, LoadedModel] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def load(self, model_id: str) -> LoadedModel:
        """The loaded model for the record as it is now (from the cache when the record is unchanged)."""
        record = self._registry.get(model_id)
        key = cache_key(record)
        with self._lock:
            found = self._models.get(key)
            if found is not None:
                self._models.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
            for stale in [k for k in self._models if k[0] == record.id]:
                del self._models[stale]
        loaded = self._load(record)
        with self._lock:
            self._models[key] = loaded
            self._models.move_to_end(key)
            while len(self._models) > self._capacity:
                evicted, _ = self._models.popitem(last=False)
                log.debug("evicted model %s from the cache", evicted[0])
        return loaded

    def _load(self, record: Model) -> LoadedModel:
        assert record.artifact is not None
        booster = self._artifacts.load_lightgbm(record.artifact)
        ref = record.artifacts.get(PROCESSORS_ARTIFACT)
        if ref is None:
            features = list(booster.feature_name())
            steps: list[ProcessorStep] = []
            chain = ProcessorChain([])
        else:
            steps, features, chain = decode_state(self._artifacts.get_bytes(ref))
        log.info("loaded model %s (%d features)", record.id, len(features))
        return LoadedModel(record, booster, features, steps, chain)

    def cached(self) -> list[CacheKey]:
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
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
        cache: FeatureCache | None = None,
    ) -> pl.DataFrame:
        """``datetime, code, score`` for each date's members of ``universe`` within ``dates``."""
        model = self.load(model_id)
        frame = compute_features(
            store, universe, dates, model.record.feature_set or "alpha158", label=False, cache=cache
        )
        return model.score(frame, self._num_threads)

    def predict_partial(
        self,
        model_id: str,
        store: FeatureSource,
        universe: Universe,
        dates: DateRange,
        *,
        cache: FeatureCache | None = None,
    ) -> PartialFrame:
        """:meth:`predict` of the members that load; the others are left out, with their errors."""
        model = self.load(model_id)
        features = compute_features_partial(
            store, universe, dates, model.record.feature_set or "alpha158", label=False, cache=cache
        )
        return PartialFrame(model.score(features.frame, self._num_threads), features.errors)


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
