"""Composition root: settings -> adapters -> use cases.

Nothing here runs at import time; entrypoints (CLI, HTTP, scripts) call these factories with the settings
they read once (:func:`~hikyuu_qlib.settings.load_settings`), and the factories pass them on. The public
library entrypoints (:func:`open_store`, :func:`open_market`, :func:`open_market_async`,
:func:`open_registry`, :func:`open_artifacts`) read them when called without any.

An entrypoint also builds its :class:`~hikyuu_qlib.observability.telemetry.Telemetry` here once
(:func:`open_telemetry`: the metrics it owns, tracing from the ``OTEL_*`` variables) and passes it to the
factories; without one, adapters record nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

from hikyuu_qlib.marketdata import AsyncMarketDataClient, MarketDataClient
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.ports import Cache, FeatureSource, MarketData
from hikyuu_qlib.settings import Settings, load_settings
from hikyuu_qlib.stores.source import SourceSpec

if TYPE_CHECKING:
    from hikyuu_qlib.cache.tiered import TieredCache
    from hikyuu_qlib.registry.artifacts import LocalArtifactStore
    from hikyuu_qlib.registry.repository import AsyncModelRepository
    from hikyuu_qlib.registry.sync import ModelRegistry


def open_store(source: str | SourceSpec | None = None, *, settings: Settings | None = None) -> MarketData:
    """Open the market data adapter that a source spec names (default: the settings' source); Hikyuu
    caches go under the settings' home, a Qlib store's ``$change`` unit and ``$volume`` convention are the
    settings'."""
    settings = load_settings(settings)
    spec = resolve_source(source, settings)
    if spec.kind == "hikyuu":
        from hikyuu_qlib.stores.hikyuu import HikyuuStore

        assert spec.path is not None
        return HikyuuStore.open(spec.path, cache_dir=settings.home / "cache")
    if spec.kind == "qlib":
        from hikyuu_qlib.stores.qlib import QlibStore

        assert spec.path is not None
        return QlibStore.open(spec.path, change_unit=settings.qlib_change_unit, volume=settings.qlib_volume)
    from hikyuu_qlib.stores.synthetic import SyntheticStore

    return SyntheticStore(spec.synthetic)


def open_telemetry(
    settings: Settings | None = None, *, metrics: bool = True, environ: Mapping[str, str] | None = None
) -> Telemetry:
    """The telemetry of one process entrypoint: Prometheus metrics on a registry of its own (``metrics``;
    else switched off) and tracing as the ``OTEL_*`` variables of ``environ`` (default: the process
    environment) say. The caller closes it when the entrypoint ends (spans still buffered are exported)."""
    from hikyuu_qlib.observability.metrics import PrometheusMetrics
    from hikyuu_qlib.observability.recording import Metrics
    from hikyuu_qlib.observability.tracing import Tracing
    from hikyuu_qlib.version import package_version

    settings = load_settings(settings)
    version = package_version()
    tracing = Tracing.from_env(
        os.environ if environ is None else environ, version=version, traces_file=settings.traces_file
    )
    return Telemetry(PrometheusMetrics(version) if metrics else Metrics(), tracing)


def open_feature_source(store: MarketData, telemetry: Telemetry | None = None) -> FeatureSource:
    """The one feature source research reads from ``store``: the store itself when it serves features (a
    Qlib store), else :class:`~hikyuu_qlib.modelling.bars_source.BarsFeatureSource` over its bars. With
    active ``telemetry`` its loads are timed and traced (:class:`~hikyuu_qlib.observability.loads.ObservedFeatureSource`)."""
    source: FeatureSource
    if isinstance(store, FeatureSource):
        source = store
    else:
        from hikyuu_qlib.modelling.bars_source import BarsFeatureSource

        source = BarsFeatureSource(store)
    if telemetry is None or not telemetry.active:
        return source
    from hikyuu_qlib.observability.loads import ObservedFeatureSource

    return ObservedFeatureSource(source, telemetry)


def resolve_source(source: str | SourceSpec | None, settings: Settings) -> SourceSpec:
    """The source to use: an explicit one, else the settings' (env ``HQ_SOURCE``, config file, default)."""
    if isinstance(source, SourceSpec):
        return source
    if source:
        return SourceSpec.parse(source)
    return SourceSpec.parse(settings.source)


def open_cache(settings: Settings | None = None, *, telemetry: Telemetry | None = None) -> TieredCache:
    """The cache the settings describe: L1 in memory (``cache_memory_bytes``), L2 in Redis when
    ``cache_url`` is set, L3 under ``cache_disk_dir`` (``cache_disk_bytes``); a bound of 0 turns a tier
    off. Nothing connects until the cache is used, and an unreachable Redis is skipped, never an error.
    ``telemetry`` counts its lookups per tier and result (``hq_cache_requests_total``) and, with tracing
    on, traces its lookups and the Redis commands."""
    from hikyuu_qlib.cache.disk import DiskTier
    from hikyuu_qlib.cache.memory import MemoryTier
    from hikyuu_qlib.cache.tiered import TieredCache

    s = load_settings(settings)
    redis = None
    if s.cache_url is not None:
        from hikyuu_qlib.cache.redis_tier import RedisTier

        if telemetry is not None:
            telemetry.tracing.instrument_redis()  # spans of the Redis commands (tracing on only)

        redis = RedisTier(
            s.cache_url,
            prefix=s.cache_key_prefix,
            ttl_ms=s.cache_ttl_s * 1000,
            max_value_bytes=s.cache_redis_max_value_bytes,
            timeout_s=s.cache_redis_timeout_s,
            max_backoff_s=s.cache_redis_retry_s,
        )
    return TieredCache(
        memory=MemoryTier(s.cache_memory_bytes) if s.cache_memory_bytes else None,
        redis=redis,
        disk=DiskTier(s.cache_disk_dir, s.cache_disk_bytes) if s.cache_disk_bytes else None,
        lock_ttl_ms=s.cache_lock_ttl_ms,
        lock_wait_s=s.cache_lock_wait_s,
        version_interval_s=s.cache_version_check_s,
        metrics=None if telemetry is None else telemetry.metrics,
        tracing=None if telemetry is None else telemetry.tracing,
    )


def open_market(
    source: str | SourceSpec | None = None,
    *,
    settings: Settings | None = None,
    telemetry: Telemetry | None = None,
    cache: Cache | None = None,
) -> MarketDataClient:
    """A sync market data client over the named source (default: the settings' source); bar queries and
    stock lists go through ``cache`` when one is given (see :func:`open_cache`)."""
    settings = load_settings(settings)
    return MarketDataClient(
        open_store(source, settings=settings),
        max_workers=settings.io_workers,
        telemetry=telemetry,
        cache=cache,
    )


def open_market_async(
    source: str | SourceSpec | None = None,
    *,
    settings: Settings | None = None,
    telemetry: Telemetry | None = None,
    cache: Cache | None = None,
) -> AsyncMarketDataClient:
    """An async market data client over the named source (default: the settings' source), cached like
    :func:`open_market`."""
    settings = load_settings(settings)
    return AsyncMarketDataClient(
        open_store(source, settings=settings),
        max_workers=settings.io_workers,
        telemetry=telemetry,
        cache=cache,
    )


@overload
def open_registry(
    url: str | None = None,
    *,
    settings: Settings | None = None,
    sync: Literal[True],
    telemetry: Telemetry | None = None,
    cache: Cache | None = None,
    **options: Any,
) -> ModelRegistry: ...


@overload
def open_registry(
    url: str | None = None,
    *,
    settings: Settings | None = None,
    sync: Literal[False] = False,
    telemetry: Telemetry | None = None,
    cache: Cache | None = None,
    **options: Any,
) -> AsyncModelRepository: ...


def open_registry(
    url: str | None = None,
    *,
    settings: Settings | None = None,
    sync: bool = False,
    telemetry: Telemetry | None = None,
    cache: Cache | None = None,
    **options: Any,
) -> AsyncModelRepository | ModelRegistry:
    """The model registry at ``url`` (else ``HQ_DATABASE_URL``/settings, else ``sqlite:///~/.hikyuu_qlib/registry.db``).

    Returns an unopened async repository (``async with open_registry() as repo``), or with ``sync=True``
    the blocking facade (``with open_registry(sync=True) as reg``). ``options`` override
    :class:`~hikyuu_qlib.registry.engine.RegistryOptions` fields (pool_size, schema, application_name …).
    ``telemetry`` times, counts and traces its operations. With ``cache``, reads by id and by prefix are
    cached and every write invalidates them in every process (:mod:`hikyuu_qlib.cache.records`).
    """
    from hikyuu_qlib.registry.engine import RegistryOptions

    settings = load_settings(settings)
    resolved = url or settings.registry_url
    registry_options = RegistryOptions.from_settings(settings, **options)
    if sync:
        from hikyuu_qlib.registry.sync import ModelRegistry

        if cache is None:
            return ModelRegistry(resolved, registry_options, telemetry=telemetry)
        from hikyuu_qlib.cache.records import CachedModelRegistry

        return CachedModelRegistry(resolved, registry_options, cache, telemetry=telemetry)
    from hikyuu_qlib.registry.repository import AsyncModelRepository

    if cache is None:
        return AsyncModelRepository(resolved, registry_options, telemetry=telemetry)
    from hikyuu_qlib.cache.records import CachedModelRepository

    return CachedModelRepository(resolved, registry_options, cache, telemetry=telemetry)


def open_artifacts(settings: Settings | None = None) -> LocalArtifactStore:
    """The artifact store under ``settings.home / "artifacts"``."""
    from hikyuu_qlib.registry.artifacts import LocalArtifactStore

    return LocalArtifactStore(load_settings(settings).home / "artifacts")
