"""What one server process holds while it runs: the adapters, opened from the settings by the
composition root's factories, and the executors that keep blocking work off the event loop.

- market data: :class:`~hikyuu_qlib.marketdata.AsyncMarketDataClient` (its own bounded executor);
- models: :class:`~hikyuu_qlib.registry.repository.AsyncModelRepository` (async, point reads);
- jobs: :class:`~hikyuu_qlib.registry.jobs.JobStore` over the sync registry, called on ``blocking``;
- predictions: a :class:`~hikyuu_qlib.research.ResearchContext` (its predictor keeps an LRU of loaded
  boosters), called on ``compute`` (``api_compute_workers`` threads);
- bars bodies: :class:`~hikyuu_qlib.service.bodies.BarBodies` (built in its processes, kept in the cache).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from hikyuu_qlib.service.auth import Authenticator
from hikyuu_qlib.settings import Settings

if TYPE_CHECKING:
    from hikyuu_qlib.cache.tiered import TieredCache
    from hikyuu_qlib.marketdata import AsyncMarketDataClient
    from hikyuu_qlib.observability.telemetry import Telemetry
    from hikyuu_qlib.registry.jobs import JobStore
    from hikyuu_qlib.registry.repository import AsyncModelRepository
    from hikyuu_qlib.registry.sync import ModelRegistry
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.service.bodies import BarBodies
    from hikyuu_qlib.service.jobs.runner import JobRunner

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class ServiceState:
    settings: Settings
    auth: Authenticator
    telemetry: Telemetry
    cache: TieredCache
    market: AsyncMarketDataClient
    models: AsyncModelRepository
    registry: ModelRegistry
    jobs: JobStore
    research: ResearchContext
    compute: ThreadPoolExecutor
    blocking: ThreadPoolExecutor
    bodies: BarBodies
    runner: JobRunner | None = None
    source: str = field(default="")

    async def run_compute(self, fn: Callable[[], T]) -> T:
        """CPU-bound work (predictions) on the compute threads."""
        return await asyncio.get_running_loop().run_in_executor(self.compute, fn)

    async def run_blocking(self, fn: Callable[[], T]) -> T:
        """Short blocking calls (the jobs table, a store listing) on the blocking threads."""
        return await asyncio.get_running_loop().run_in_executor(self.blocking, fn)


async def open_state(settings: Settings, telemetry: Telemetry, *, run_jobs: bool) -> ServiceState:
    """Open every adapter of a server process (and, with ``run_jobs``, the job runner): market data and
    model records go through the settings' cache, and every adapter records to ``telemetry``."""
    from hikyuu_qlib.app import open_cache, open_market_async, open_registry
    from hikyuu_qlib.registry.jobs import JobStore
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.service.bodies import BarBodies

    auth = Authenticator(settings.api_tokens, public_read=settings.api_public_read, metrics=telemetry.metrics)
    cache = open_cache(settings, telemetry=telemetry)
    market = open_market_async(settings=settings, telemetry=telemetry, cache=cache)
    models = await open_registry(settings=settings, telemetry=telemetry, cache=cache).open()
    blocking = ThreadPoolExecutor(max(2, settings.io_workers), thread_name_prefix="hq-api-io")
    loop = asyncio.get_running_loop()
    registry = await loop.run_in_executor(
        blocking, lambda: open_registry(settings=settings, sync=True, telemetry=telemetry, cache=cache).open()
    )
    research = ResearchContext(settings, store=None, telemetry=telemetry)
    compute = ThreadPoolExecutor(settings.api_compute_workers, thread_name_prefix="hq-api-compute")
    state = ServiceState(
        settings=settings,
        auth=auth,
        telemetry=telemetry,
        cache=cache,
        market=market,
        models=models,
        registry=registry,
        jobs=JobStore(registry),
        research=research,
        compute=compute,
        blocking=blocking,
        bodies=BarBodies(settings, cache=cache, market=market, threads=blocking),
        source=market.store.source,
    )
    if run_jobs:
        from hikyuu_qlib.service.jobs.runner import JobRunner

        runner = JobRunner(settings, metrics=telemetry.metrics)
        state.runner = await loop.run_in_executor(blocking, runner.start)
    return state


async def close_state(state: ServiceState) -> None:
    loop = asyncio.get_running_loop()
    if state.runner is not None:
        await loop.run_in_executor(None, state.runner.stop, state.settings.api_shutdown_grace)
    state.compute.shutdown(wait=True, cancel_futures=True)
    await loop.run_in_executor(None, state.bodies.close)
    await loop.run_in_executor(None, state.research.close)
    await state.market.aclose()
    await state.models.close()
    await loop.run_in_executor(None, state.registry.close)
    await loop.run_in_executor(None, state.cache.close)
    state.blocking.shutdown(wait=True, cancel_futures=True)
