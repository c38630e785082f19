"""PostgreSQL backends terminated mid-workload: operations retry on fresh connections, nothing is lost."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import psycopg
import pytest
from registry_support import Target, make_target, sample

from hikyuu_qlib.registry import AsyncModelRepository, ModelRegistry


@pytest.fixture
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with make_target("postgresql", request, tmp_path_factory) as t:
        yield t.with_options(retry_attempts=10)


def _terminate(pg_url: str, app: str) -> int:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND application_name = %s",
            (app,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


@pytest.mark.postgres
async def test_async_workload_survives_pg_terminate_backend(target: Target) -> None:
    assert target.pg_url is not None
    app = target.options.application_name
    killed = 0
    async with AsyncModelRepository(target.url, target.options) as repo:
        saved_ids: list[str] = []

        async def worker(w: int) -> None:
            for i in range(60):
                model = await repo.save(sample(f"fault-{w}", i))
                saved_ids.append(model.id)
                assert (await repo.get(model.id)).id == model.id
                if i % 20 == 0:
                    batch = await repo.save_many([sample(f"fault-b{w}", i * 100 + j) for j in range(50)])
                    saved_ids.extend(m.id for m in batch)
                    await repo.find(limit=20)
                await asyncio.sleep(0)

        async def killer() -> None:
            nonlocal killed
            for _ in range(8):
                await asyncio.sleep(0.15)
                killed += await asyncio.to_thread(_terminate, target.pg_url or "", app)

        await asyncio.gather(killer(), *(worker(w) for w in range(6)))
        assert killed >= 3, f"only {killed} backends were terminated: the test proved nothing"
        assert len(saved_ids) == len(set(saved_ids))
        assert await repo.count() == len(saved_ids)
        found = await repo.get_many(saved_ids)
        assert len(found) == len(saved_ids)


@pytest.mark.postgres
def test_sync_facade_survives_pg_terminate_backend(target: Target) -> None:
    assert target.pg_url is not None
    app = target.options.application_name
    killed = 0
    stop = threading.Event()

    def killer() -> None:
        nonlocal killed
        while not stop.wait(0.1):
            killed += _terminate(target.pg_url or "", app)

    with ModelRegistry(target.url, target.options) as registry:
        thread = threading.Thread(target=killer)
        thread.start()
        try:
            saved = [registry.save(sample("sync-fault", i)).id for i in range(300)]
            saved += [m.id for m in registry.save_many([sample("sync-fault-b", i) for i in range(500)])]
            assert all(registry.get(i).id == i for i in saved[::10])
        finally:
            stop.set()
            thread.join()
        assert killed >= 1, "no backend was terminated: the test proved nothing"
        assert registry.count() == len(set(saved)) == 800
