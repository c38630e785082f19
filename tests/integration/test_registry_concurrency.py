"""Many writers at once: nothing lost, nothing duplicated, no lock error reaches a caller."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest
from registry_support import Target, make_target, sample

from hikyuu_qlib.registry import AsyncModelRepository

WRITERS = 50
SAVES = 200
NAMES = 10


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with make_target(request.param, request, tmp_path_factory) as t:
        yield t


@pytest.mark.slow
async def test_fifty_writers_two_hundred_saves_each(target: Target) -> None:
    errors: list[BaseException] = []
    busy = target.with_options(pool_size=10, max_overflow=20)
    async with AsyncModelRepository(busy.url, busy.options) as repo:

        async def writer(w: int) -> list[tuple[str, int]]:
            done = []
            for i in range(SAVES):
                model = sample(f"race-{(w + i) % NAMES}", i, tags={"writer": str(w)})
                try:
                    saved = await repo.save(model)
                except Exception as error:  # collected, so the assertion shows every failure
                    errors.append(error)
                    continue
                done.append((saved.id, saved.version or 0))
                if i % 50 == 49:  # an update of an earlier model keeps its version
                    again = await repo.save(saved.transition("training"))
                    assert again.version == saved.version
            return done

        results = await asyncio.gather(*(writer(w) for w in range(WRITERS)))
        assert not errors, f"{len(errors)} errors reached callers, first: {errors[0]!r}"
        saved_ids = [i for part in results for i, _ in part]
        assert len(saved_ids) == len(set(saved_ids)) == WRITERS * SAVES
        assert await repo.count() == WRITERS * SAVES
        stored = [m async for m in repo.iterate(batch=2000)]
        assert sorted(m.id for m in stored) == sorted(saved_ids)
        per_name = Counter(m.name for m in stored)
        for name, n in per_name.items():
            versions = sorted(m.version or 0 for m in stored if m.name == name)
            assert versions == list(range(1, n + 1)), f"versions of {name} have gaps or repeats"
        assert sum(1 for m in stored if m.status.value == "training") == WRITERS * (SAVES // 50)
