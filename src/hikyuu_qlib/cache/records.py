"""Model records through the cache: by id and by id prefix, invalidated by every write, in every process.

Keys carry the registry's generation token (:meth:`~hikyuu_qlib.ports.Cache.generation`): every save,
transition and delete made through these wrappers gives the registry a new token once the write is
done, so no process serves a record read before it — other processes too, through Redis (or, without
Redis, through the token file of this host). While the token cannot be known (Redis configured but
down), reads go to the registry. ``delete`` goes through ``delete_many``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence

from hikyuu_qlib.cache.keys import record_key, registry_identity, resolve_key
from hikyuu_qlib.cache.values import MODEL, MODEL_ID
from hikyuu_qlib.domain.model import Model, ModelStatus
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.ports import Cache
from hikyuu_qlib.registry.engine import RegistryOptions
from hikyuu_qlib.registry.repository import AsyncModelRepository
from hikyuu_qlib.registry.sync import ModelRegistry


def _scope(url: str) -> tuple[str, str]:
    identity = registry_identity(url)
    return identity, identity.replace(":", "-")


class CachedModelRegistry(ModelRegistry):
    """The blocking registry with cached ``get`` and ``resolve``; every write bumps the generation before
    it starts (so that its own reads, such as a transition's, see the database) and after it ends."""

    def __init__(
        self, url: str, options: RegistryOptions | None, cache: Cache, *, telemetry: Telemetry | None = None
    ) -> None:
        super().__init__(url, options, telemetry=telemetry)
        self.cache = cache
        self._identity, self._scope = _scope(url)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        self.cache.bump(self._scope)
        try:
            yield
        finally:
            self.cache.bump(self._scope)

    def get(self, model_id: str) -> Model:
        generation = self.cache.generation(self._scope)
        if generation is None:
            return super().get(model_id)
        key = record_key(self._identity, generation, model_id)
        return self.cache.get_or_compute(key, lambda: ModelRegistry.get(self, model_id), MODEL)

    def resolve(self, prefix: str) -> str:
        generation = self.cache.generation(self._scope)
        if generation is None:
            return super().resolve(prefix)
        key = resolve_key(self._identity, generation, prefix)
        return self.cache.get_or_compute(key, lambda: ModelRegistry.resolve(self, prefix), MODEL_ID)

    def save(self, model: Model) -> Model:
        with self._writing():
            return super().save(model)

    def save_many(self, items: Sequence[Model]) -> list[Model]:
        with self._writing():
            return super().save_many(items)

    def transition(self, model_id: str, target: ModelStatus | str) -> Model:
        with self._writing():
            return super().transition(model_id, target)

    def delete_many(self, ids: Iterable[str]) -> int:
        with self._writing():
            return super().delete_many(ids)


class CachedModelRepository(AsyncModelRepository):
    """The async repository with cached ``get`` and ``resolve`` (the keys of
    :class:`CachedModelRegistry`, so both invalidate each other)."""

    def __init__(
        self, url: str, options: RegistryOptions | None, cache: Cache, *, telemetry: Telemetry | None = None
    ) -> None:
        super().__init__(url, options, telemetry=telemetry)
        self.cache = cache
        self._identity, self._scope = _scope(url)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        await self.cache.abump(self._scope)
        try:
            yield
        finally:
            await self.cache.abump(self._scope)

    async def get(self, model_id: str) -> Model:
        generation = await self.cache.ageneration(self._scope)
        if generation is None:
            return await super().get(model_id)
        key = record_key(self._identity, generation, model_id)
        return await self.cache.aget_or_compute(key, lambda: AsyncModelRepository.get(self, model_id), MODEL)

    async def resolve(self, prefix: str) -> str:
        generation = await self.cache.ageneration(self._scope)
        if generation is None:
            return await super().resolve(prefix)
        key = resolve_key(self._identity, generation, prefix)
        return await self.cache.aget_or_compute(
            key, lambda: AsyncModelRepository.resolve(self, prefix), MODEL_ID
        )

    async def save(self, model: Model) -> Model:
        async with self._writing():
            return await super().save(model)

    async def save_many(self, items: Sequence[Model]) -> list[Model]:
        async with self._writing():
            return await super().save_many(items)

    async def transition(self, model_id: str, target: ModelStatus | str) -> Model:
        async with self._writing():
            return await super().transition(model_id, target)

    async def delete_many(self, ids: Iterable[str]) -> int:
        async with self._writing():
            return await super().delete_many(ids)
