"""Composition root: settings -> adapters -> use cases.

Nothing here runs at import time; entrypoints (CLI, HTTP, scripts) call these factories.
"""

from __future__ import annotations

from hikyuu_qlib.marketdata import AsyncMarketDataClient, MarketDataClient
from hikyuu_qlib.ports import MarketData
from hikyuu_qlib.settings import Settings
from hikyuu_qlib.stores.source import SourceSpec


def open_store(source: str | SourceSpec) -> MarketData:
    """Open the market data adapter that a source spec names."""
    spec = SourceSpec.parse(source)
    if spec.kind == "hikyuu":
        from hikyuu_qlib.stores.hikyuu import HikyuuStore

        assert spec.path is not None
        return HikyuuStore.open(spec.path)
    if spec.kind == "qlib":
        from hikyuu_qlib.stores.qlib import QlibStore

        assert spec.path is not None
        return QlibStore.open(spec.path)
    from hikyuu_qlib.stores.synthetic import SyntheticStore

    return SyntheticStore(spec.synthetic)


def resolve_source(source: str | SourceSpec | None, settings: Settings | None = None) -> SourceSpec:
    """The source to use: an explicit one, else the settings' (env ``HQ_SOURCE``, config file, default)."""
    if isinstance(source, SourceSpec):
        return source
    if source:
        return SourceSpec.parse(source)
    return SourceSpec.parse((settings or Settings()).source)


def open_market(
    source: str | SourceSpec | None = None, *, settings: Settings | None = None
) -> MarketDataClient:
    """A sync market data client over the named source (default: the settings' source)."""
    settings = settings or Settings()
    return MarketDataClient(open_store(resolve_source(source, settings)), max_workers=settings.io_workers)


def open_market_async(
    source: str | SourceSpec | None = None, *, settings: Settings | None = None
) -> AsyncMarketDataClient:
    """An async market data client over the named source (default: the settings' source)."""
    settings = settings or Settings()
    return AsyncMarketDataClient(
        open_store(resolve_source(source, settings)), max_workers=settings.io_workers
    )
