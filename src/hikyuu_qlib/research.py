"""The research context: one object that holds what a research command needs, opened lazily.

Every research entrypoint (``hq model train``, ``hq model evaluate``, ``hq predict``, ``hq backtest run``,
``hq run``, ``hq demo``, the workflow runner) builds one from the settings it was given and closes it
when done. It opens, through the factories of :mod:`hikyuu_qlib.app`, the market data store, the one
feature source that training, evaluation, prediction and the backtest all read
(:func:`~hikyuu_qlib.app.open_feature_source`), the model registry (sync facade), the artifact store, the
predictor with its LRU of loaded models, and the cache (:func:`~hikyuu_qlib.app.open_cache`: features,
predictions, model records and boosters go through it); and it closes the store, the registry and the
cache. The entrypoint's telemetry (:func:`~hikyuu_qlib.app.open_telemetry`), when given, goes to the
registry and the feature source, and the workflow runner records its stages with it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import polars as pl

from hikyuu_qlib.app import open_artifacts, open_cache, open_feature_source, open_registry, open_store
from hikyuu_qlib.domain import DateRange, InvalidInputError, NotFoundError
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.ports import Cache, FeatureSource, MarketData, ModelFiles, ModelRecords, RiskFreeSource
from hikyuu_qlib.settings import Settings

if TYPE_CHECKING:
    from hikyuu_qlib.domain.model import Model
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.modelling.predictor import Predictor
    from hikyuu_qlib.registry.artifacts import LocalArtifactStore
    from hikyuu_qlib.registry.sync import ModelRegistry
    from hikyuu_qlib.stores.source import SourceSpec

log = logging.getLogger(__name__)

#: The tag of a model trained on a Qlib instruments file (``--universe-file``): the file's absolute path.
UNIVERSE_FILE_TAG = "universe_file"


class ResearchContext:
    """Lazily opened adapters for research use cases; a context manager that closes what it holds.

    ``store`` is the market data store (opened from ``source``, default the settings' source, on first
    use, or given); the context owns it and closes it. ``create_registry=False`` (commands that only
    read) opens the registry without creating it.
    """

    def __init__(
        self,
        settings: Settings,
        store: MarketData | None = None,
        *,
        source: str | SourceSpec | None = None,
        db: str | None = None,
        create_registry: bool = True,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry or Telemetry.disabled()
        self._source = source
        self._store = store
        self._features: FeatureSource | None = None
        self._db = db
        self._create_registry = create_registry
        self._registry: ModelRegistry | None = None
        self._artifacts: LocalArtifactStore | None = None
        self._predictor: Predictor | None = None
        self._cache: Cache | None = None

    @classmethod
    def open(
        cls,
        source: str | SourceSpec | None = None,
        *,
        settings: Settings,
        db: str | None = None,
        create_registry: bool = True,
        telemetry: Telemetry | None = None,
    ) -> Self:
        """A context over ``source`` (default: the settings'), with the registry at ``db`` (default: the
        settings'). Nothing is opened until it is used."""
        return cls(settings, source=source, db=db, create_registry=create_registry, telemetry=telemetry)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the registry, the store and the cache (each at most once; the context can be used
        again after)."""
        registry, self._registry, self._predictor = self._registry, None, None
        store, self._store, self._features = self._store, None, None
        cache, self._cache = self._cache, None
        try:
            if registry is not None:
                registry.close()
        finally:
            try:
                if store is not None:
                    store.close()
            finally:
                if cache is not None:
                    cache.close()

    # --- market data -----------------------------------------------------------------------------------

    def use_model_source(self, model: Model) -> None:
        """Read the market the model was trained on (its ``source`` tag) when the context was given no
        source; call it before the store is used."""
        if self._source is None and self._store is None:
            self._source = model.tags.get("source") or None

    @property
    def store(self) -> MarketData:
        if self._store is None:
            self._store = open_store(self._source, settings=self.settings)
        return self._store

    @property
    def features(self) -> FeatureSource:
        """The feature source of the store: training, evaluation, prediction and the backtest read it."""
        if self._features is None:
            self._features = open_feature_source(self.store, self.telemetry)
        return self._features

    @property
    def source(self) -> str:
        return self.store.source

    def universe(self, name: str, dates: DateRange, *, file: Path | None = None) -> Universe:
        """A universe name of the source (its spans overlapping ``dates``; on a Hikyuu store also its
        blocks, such as 沪深300) or a list ``CODE,CODE,…``; with ``file``, the Qlib instruments file
        instead (``--universe-file``)."""
        from hikyuu_qlib.factors.universe import Universe

        if file is not None:
            return Universe.from_file(file)
        if "," in name:
            codes = [c.strip() for c in name.split(",") if c.strip()]
            if not codes:
                raise InvalidInputError(f"no code in the universe {name!r}")
            return Universe.from_codes(codes)
        return Universe.from_store(self.features, name, dates)

    def model_universe(
        self, model: Model, name: str | None, dates: DateRange, *, file: Path | None = None
    ) -> Universe:
        """The universe a command runs a registered ``model`` on: ``name`` or the instruments ``file``
        when given (not both), else the model's own — the instruments file it was trained on (its
        ``universe_file`` tag) or its universe name."""
        if name and file is not None:
            raise InvalidInputError("--universe and --universe-file are mutually exclusive: give one")
        if name or file is not None:
            return self.universe(name or "", dates, file=file)
        saved = model.tags.get(UNIVERSE_FILE_TAG)
        if saved:
            path = Path(saved)
            if not path.is_file():
                raise NotFoundError(
                    f"model {model.id} was trained on the instruments file {path}, which is not found: "
                    "give --universe or --universe-file"
                )
            return self.universe("", dates, file=path)
        return self.universe(model.universe, dates)

    def risk_free(self) -> pl.DataFrame | None:
        """The store's risk-free rates (``datetime, rate``) when it has them (a RiskFreeSource)."""
        store = self.store
        return store.risk_free() if isinstance(store, RiskFreeSource) else None

    # --- models ----------------------------------------------------------------------------------------

    @property
    def registry(self) -> ModelRecords:
        if self._registry is None:
            self._registry = open_registry(
                self._db,
                settings=self.settings,
                sync=True,
                telemetry=self.telemetry,
                create=self._create_registry,
                cache=self.cache,
            ).open()
        return self._registry

    @property
    def registry_url(self) -> str:
        """The registry's URL (given, else the settings'): what workers of a distributed run open."""
        return self._db or self.settings.registry_url

    @property
    def artifacts(self) -> ModelFiles:
        if self._artifacts is None:
            self._artifacts = open_artifacts(self.settings)
        return self._artifacts

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            from hikyuu_qlib.modelling.predictor import Predictor

            self._predictor = Predictor(self.registry, self.artifacts, cache=self.cache)
        return self._predictor

    @property
    def cache(self) -> Cache:
        """The cache of the settings (memory, Redis with ``HQ_CACHE_URL``, disk)."""
        if self._cache is None:
            self._cache = open_cache(self.settings, telemetry=self.telemetry)
        return self._cache

    def resolve_model(self, prefix: str) -> str:
        return self.registry.resolve(prefix)

    @staticmethod
    def model_dates(model: Model, start: str | None, end: str | None) -> DateRange:
        """The days a command runs a registered ``model`` on: ``start`` and ``end``, each one not given
        taken from the model's test segment (as Qlib's workflow backtests its test segment)."""
        test = model.segments.test
        if test is not None:
            return DateRange.of(start or test.start, end or test.end)
        if start is None or end is None:
            raise InvalidInputError(f"model {model.id} has no test segment: give --start and --end")
        return DateRange.of(start, end)

    def predict(
        self, model_id: str, universe: str, dates: DateRange, *, universe_file: Path | None = None
    ) -> pl.DataFrame:
        """``datetime, code, score`` of a registered model over each date's members of ``universe`` (or
        of the instruments file ``universe_file``)."""
        members = self.universe(universe, dates, file=universe_file)
        return self.predictor.predict(model_id, self.features, members, dates, cache=self.cache)

    def record_backtest(self, model_id: str, summary: dict[str, Any]) -> None:
        """Store a backtest summary in the model's registry record (``metrics["backtest"]``)."""
        finite = {
            k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in summary.items()
        }
        model = self.registry.get(model_id)
        self.registry.save(model.with_metrics({**model.metrics, "backtest": finite}))
        log.info("stored the backtest summary with model %s", model_id)
