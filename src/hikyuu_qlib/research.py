"""The research context: one object that holds what a research command needs, opened lazily.

It is built by entrypoints (CLI, workflow runner) from settings through the factories of
:mod:`hikyuu_qlib.app`, and closed with them: the market data store, its Qlib view (see
:mod:`hikyuu_qlib.stores.materialize`), the model registry (sync facade), the artifact store, the
predictor with its LRU of loaded models, and the feature cache.
"""

from __future__ import annotations

import logging
import math
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import polars as pl

from hikyuu_qlib.app import open_artifacts, open_registry, open_store, resolve_source
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.ports import MarketData, ModelFiles, ModelRecords, Progress
from hikyuu_qlib.settings import Settings

if TYPE_CHECKING:
    from hikyuu_qlib.factors.cache import FeatureCache
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.modelling.predictor import Predictor
    from hikyuu_qlib.registry.artifacts import LocalArtifactStore
    from hikyuu_qlib.registry.sync import ModelRegistry
    from hikyuu_qlib.stores.qlib import QlibStore

log = logging.getLogger(__name__)


class ResearchContext:
    """Lazily opened adapters for research use cases; a context manager that closes what it opened."""

    def __init__(self, settings: Settings, store: MarketData, *, db: str | None = None) -> None:
        self.settings = settings
        self.store = store
        self._db = db
        self._views: dict[str, QlibStore] = {}
        self._registry: ModelRegistry | None = None
        self._artifacts: LocalArtifactStore | None = None
        self._predictor: Predictor | None = None
        self._cache: FeatureCache | None = None

    @classmethod
    def open(
        cls, source: str | None = None, *, db: str | None = None, settings: Settings | None = None
    ) -> Self:
        settings = settings or Settings()
        return cls(settings, open_store(resolve_source(source, settings), settings=settings), db=db)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None
        for view in self._views.values():
            if view is not self.store:
                view.close()
        self._views.clear()
        self.store.close()

    @property
    def source(self) -> str:
        return self.store.source

    def qlib_store(self, universe: str = "all", progress: Progress | None = None) -> QlibStore:
        """The Qlib-layout view of the source holding ``universe`` (exported once per data version)."""
        from hikyuu_qlib.stores.materialize import qlib_view

        key = universe.lower()
        if key not in self._views:
            self._views[key] = qlib_view(
                self.store, self.settings.home / "cache", universes=[universe], progress=progress
            )
        return self._views[key]

    def universe(self, name: str, dates: DateRange) -> Universe:
        from hikyuu_qlib.factors.universe import Universe

        return Universe.from_store(self.qlib_store(name), name, dates)

    @property
    def registry(self) -> ModelRecords:
        if self._registry is None:
            self._registry = open_registry(self._db, settings=self.settings, sync=True).open()
        return self._registry

    @property
    def artifacts(self) -> ModelFiles:
        if self._artifacts is None:
            self._artifacts = open_artifacts(self.settings)
        return self._artifacts

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            from hikyuu_qlib.modelling.predictor import Predictor

            self._predictor = Predictor(self.registry, self.artifacts)
        return self._predictor

    @property
    def feature_cache(self) -> FeatureCache:
        if self._cache is None:
            from hikyuu_qlib.factors.cache import FeatureCache

            self._cache = FeatureCache(self.settings.feature_cache_dir)
        return self._cache

    def resolve_model(self, prefix: str) -> str:
        return self.registry.resolve(prefix)

    def predict(self, model_id: str, universe: str, dates: DateRange) -> pl.DataFrame:
        """``datetime, code, score`` of a registered model over each date's members of ``universe``."""
        store = self.qlib_store(universe)
        return self.predictor.predict(
            model_id, store, self.universe(universe, dates), dates, cache=self.feature_cache
        )

    def record_backtest(self, model_id: str, summary: dict[str, Any]) -> None:
        """Store a backtest summary in the model's registry record (``metrics["backtest"]``)."""
        finite = {
            k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in summary.items()
        }
        model = self.registry.get(model_id)
        self.registry.save(model.with_metrics({**model.metrics, "backtest": finite}))
        log.info("stored the backtest summary with model %s", model_id)

    def risk_free(self) -> pl.DataFrame | None:
        """10-year government bond yields (``datetime, rate``) when the source is a Hikyuu store."""
        layout = getattr(self.store, "layout", None)
        db = getattr(layout, "db", None)
        if db is None:
            return None
        from hikyuu_qlib.backtest import read_zh_bond10

        rates = read_zh_bond10(db)
        return rates if rates.height else None
