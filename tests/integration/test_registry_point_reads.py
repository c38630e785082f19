"""A single awaited ``get`` goes straight to the database: no batch, no pool checkout (speed is measured in
benchmarks/suites/registry.py; these tests pin the behaviour that makes it fast, and its correctness)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from registry_support import Target, make_target, sample

from hikyuu_qlib.domain import errors
from hikyuu_qlib.registry import AsyncModelRepository


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with make_target(request.param, request, tmp_path_factory) as t:
        yield t.with_options(pool_size=1, max_overflow=0, pool_timeout=1.0)


@pytest.fixture
async def repo(target: Target) -> AsyncIterator[AsyncModelRepository]:
    async with AsyncModelRepository(target.url, target.options) as r:
        yield r


async def test_a_single_get_needs_no_pooled_connection(repo: AsyncModelRepository) -> None:
    saved = await repo.save(sample("p"))
    async with repo.engine.connect():  # the pool's only connection is taken, and stays taken
        assert await repo.get(saved.id) == saved
        assert await repo.find_by_id("01ARZ3NDEKTSV4RRFFQ69G5FAV") is None
        with pytest.raises(errors.ModelNotFoundError):
            await repo.get("01ARZ3NDEKTSV4RRFFQ69G5FAV")


async def test_gets_see_every_committed_write(repo: AsyncModelRepository) -> None:
    model = await repo.save(sample("p"))
    for status in ("training", "trained", "deployed"):
        moved = await repo.transition(model.id, status)
        assert await repo.get(model.id) == moved
    more = await repo.save_many([sample("p", i) for i in range(1, 40)])
    assert [await repo.get(m.id) for m in more] == more
    await repo.delete(model.id)
    assert await repo.find_by_id(model.id) is None


async def test_concurrent_gets_beside_a_single_one(repo: AsyncModelRepository) -> None:
    models = await repo.save_many([sample("c", i) for i in range(60)])
    ids = [m.id for m in models]
    got = await asyncio.gather(*(repo.get(i) for i in ids), repo.find_by_id("01ARZ3NDEKTSV4RRFFQ69G5FAV"))
    assert [g.id for g in got[:-1] if g is not None] == ids and got[-1] is None


async def test_a_loop_of_awaited_gets_lets_other_tasks_run(repo: AsyncModelRepository) -> None:
    model = await repo.save(sample("loop"))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    for _ in range(500):
        await repo.get(model.id)
    task.cancel()
    assert ticks - start >= 10, "500 awaited gets never let another task run"


@pytest.fixture
def pg_target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with make_target("postgresql", request, tmp_path_factory) as t:
        yield t


@pytest.mark.postgres
async def test_pg_point_connection_killed_then_gets_still_answer(pg_target: Target) -> None:
    target = pg_target
    assert target.pg_url is not None
    async with AsyncModelRepository(target.url, target.options) as repo:
        model = await repo.save(sample("kill"))
        assert await repo.get(model.id) == model
        with psycopg.connect(target.pg_url, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()) AS k",
                (target.options.application_name,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        for _ in range(3):
            assert await repo.get(model.id) == model


def test_stored_times_decode_exactly() -> None:
    """Rows hold integer microseconds; the fast decoding (through a double) gives the exact time."""
    import datetime as dt
    import random

    from hikyuu_qlib.domain.model import _FLOAT_EXACT_BELOW, from_micros
    from hikyuu_qlib.registry.codec import to_micros

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    rng = random.Random(7)
    samples = [0, 1, 999_999, 1_000_000, _FLOAT_EXACT_BELOW - 1, _FLOAT_EXACT_BELOW, -1, -1_000_001]
    samples += [rng.randrange(0, _FLOAT_EXACT_BELOW) for _ in range(100_000)]
    for micros in samples:
        when = from_micros(micros)
        assert when == epoch + dt.timedelta(microseconds=micros) and to_micros(when) == micros, micros
        assert when.tzinfo is dt.UTC


@pytest.mark.postgres
async def test_pg_point_reads_run_asyncpg_protocol_call(pg_target: Target) -> None:
    """With the installed asyncpg, a point read runs the prepared statement through the protocol call
    beneath ``PreparedStatement.fetchrow`` (not the public fallback), and answers as ``fetchrow`` does."""
    import functools

    import asyncpg

    from hikyuu_qlib.registry.point_reads import statement_call

    target = pg_target
    assert target.pg_url is not None
    async with AsyncModelRepository(target.url, target.options) as repo:
        models = await repo.save_many([sample("proto", i) for i in range(3)])
        conn = await asyncpg.connect(
            target.pg_url, server_settings={"search_path": str(target.options.schema)}
        )
        try:
            stmt = await conn.prepare("SELECT * FROM models WHERE id = $1")
            call = statement_call(conn, stmt)
            assert isinstance(call, functools.partial), "asyncpg has no bind_execute: reads take fetchrow"
            for model_id in [m.id for m in models] + ["01ARZ3NDEKTSV4RRFFQ69G5FAV"]:
                rows = await call((model_id,), "", 1, False, None)
                row = await stmt.fetchrow(model_id)
                assert (rows[0] if rows else None) == row
        finally:
            await conn.close()
        assert [await repo.get(m.id) for m in models] == models
