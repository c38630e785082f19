"""One contract, two backends: the registry on a real SQLite file and on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator

import pytest
from registry_support import Target, make_target, sample

from hikyuu_qlib.domain import DateRange, errors
from hikyuu_qlib.domain.model import ModelStatus, ModelType
from hikyuu_qlib.registry import AsyncModelRepository, ModelFilter, ModelRegistry


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with make_target(request.param, request, tmp_path_factory) as t:
        yield t


@pytest.fixture
async def repo(target: Target) -> AsyncIterator[AsyncModelRepository]:
    async with AsyncModelRepository(target.url, target.options) as r:
        yield r


async def test_save_assigns_versions_per_name_and_get_round_trips(repo: AsyncModelRepository) -> None:
    a1 = await repo.save(sample("a"))
    b1 = await repo.save(sample("b"))
    a2 = await repo.save(sample("a", 1))
    assert (a1.version, b1.version, a2.version) == (1, 1, 2)
    got = await repo.get(a2.id)
    assert got == a2
    assert got.segments.train == DateRange.of("2010-01-01", "2014-12-31")
    assert got.metrics["backtest"] == {"annual_return": 0.12}


async def test_save_again_updates_in_place_keeping_version(repo: AsyncModelRepository) -> None:
    first = await repo.save(sample("a"))
    await repo.save(sample("a"))
    changed = first.transition("training").with_metrics({"ic": 0.07}).with_tags({"stage": "x"})
    saved = await repo.save(changed)
    assert saved.version == first.version == 1
    got = await repo.get(first.id)
    assert got.status is ModelStatus.TRAINING and got.metrics["ic"] == 0.07 and got.tags["stage"] == "x"
    assert got.updated_at > got.created_at or got.updated_at == changed.updated_at
    assert await repo.count() == 2


async def test_save_many_is_all_or_nothing(repo: AsyncModelRepository) -> None:
    saved = await repo.save_many([sample("m", i) for i in range(2500)])  # three chunks
    assert sorted(m.version or 0 for m in saved) == list(range(1, 2501))
    assert await repo.count() == 2500
    again = await repo.save_many([m.transition("training") for m in saved[:10]] + [sample("m", 1)])
    assert [m.version for m in again[:10]] == [m.version for m in saved[:10]]
    assert again[-1].version == 2501
    assert await repo.count(ModelFilter(status="training")) == 10
    # a batch whose last chunk fails leaves nothing of the earlier chunks behind
    before = await repo.count()
    batch = [sample("n", i) for i in range(1500)]
    object.__setattr__(batch[-1], "name", None)  # bypass validation: the database rejects it
    with pytest.raises(Exception):  # noqa: B017 - the driver's integrity error
        await repo.save_many(batch)
    assert await repo.count() == before


async def test_get_many_delete_and_missing(repo: AsyncModelRepository) -> None:
    models = await repo.save_many([sample("g", i) for i in range(5)])
    ids = [m.id for m in models]
    assert [m.id for m in await repo.get_many([ids[3], "01ARZ3NDEKTSV4RRFFQ69G5FAV", ids[0]])] == [
        ids[3],
        ids[0],
    ]
    with pytest.raises(errors.ModelNotFoundError, match="01ARZ3NDEKTSV4RRFFQ69G5FAV"):
        await repo.get("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert await repo.delete(ids[0]) is True
    assert await repo.delete(ids[0]) is False
    assert await repo.delete_many([*ids[1:3], "01ARZ3NDEKTSV4RRFFQ69G5FAV"]) == 2
    assert [m.id for m in await repo.get_many(ids)] == ids[3:]


async def test_find_filters(repo: AsyncModelRepository) -> None:
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    models = []
    for i in range(12):
        m = sample(
            "x" if i % 2 else "y",
            i,
            model_type="mlp" if i % 3 == 0 else "lightgbm",
            now=t0 + dt.timedelta(days=i),
        )
        models.append(m.transition("training") if i % 4 == 0 else m)
    await repo.save_many(models)

    async def ids(flt: ModelFilter, **kw: object) -> list[str]:
        return [m.id for m in (await repo.find(flt, limit=100, **kw)).items]  # type: ignore[arg-type]

    assert await ids(ModelFilter(status="training")) == [m.id for m in models if m.status.value == "training"]
    assert await ids(ModelFilter(model_type=ModelType.MLP)) == [
        m.id for i, m in enumerate(models) if i % 3 == 0
    ]
    assert await ids(ModelFilter(name="x")) == [m.id for m in models if m.name == "x"]
    assert await ids(ModelFilter(tags={"batch": "1"})) == [m.id for i, m in enumerate(models) if i % 3 == 1]
    assert await ids(ModelFilter(tags={"batch": "1", "owner": "nobody"})) == []
    window = ModelFilter(created_from=t0 + dt.timedelta(days=3), created_to=t0 + dt.timedelta(days=6))
    assert await ids(window) == [m.id for m in models[3:6]]
    assert await repo.count(window) == 3
    assert await ids(ModelFilter(), order="-created") == [m.id for m in reversed(models)]
    by_name = await repo.find(order="name", limit=100)
    assert [(m.name, m.version) for m in by_name.items] == sorted((m.name, m.version) for m in by_name.items)
    assert by_name.next_cursor is None


async def test_pages_and_cursors(repo: AsyncModelRepository) -> None:
    await repo.save_many([sample("p", i) for i in range(25)])
    for order in ("created", "-created", "name", "-name"):
        seen, cursor = [], None
        while True:
            page = await repo.find(order=order, limit=7, cursor=cursor)
            seen.extend(m.id for m in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert len(seen) == len(set(seen)) == 25, order
    page = await repo.find(limit=5)
    assert page.next_cursor is not None
    body, mac = page.next_cursor.split(".")
    tampered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    with pytest.raises(errors.InvalidCursorError, match="altered or made by another registry"):
        await repo.find(limit=5, cursor=tampered)
    with pytest.raises(errors.InvalidCursorError, match="another filter or order"):
        await repo.find(ModelFilter(name="p"), limit=5, cursor=page.next_cursor)
    with pytest.raises(errors.InvalidCursorError):
        await repo.find(limit=5, cursor="garbage!")
    with pytest.raises(errors.InvalidInputError, match="limit"):
        await repo.find(limit=0)


async def test_foreign_cursor_from_another_registry(repo: AsyncModelRepository, tmp_path: object) -> None:
    import pathlib

    await repo.save_many([sample("p", i) for i in range(3)])
    other_url = f"sqlite:///{pathlib.Path(str(tmp_path)) / 'other.db'}"
    async with AsyncModelRepository(other_url) as other:
        await other.save_many([sample("p", i) for i in range(3)])
        foreign = (await other.find(limit=1)).next_cursor
    assert foreign is not None
    with pytest.raises(errors.InvalidCursorError, match="another registry"):
        await repo.find(limit=1, cursor=foreign)


async def test_iterate_streams_every_match(repo: AsyncModelRepository) -> None:
    await repo.save_many([sample("it", i) for i in range(130)])
    got = [m.id async for m in repo.iterate(ModelFilter(name="it"), batch=50)]
    assert len(got) == len(set(got)) == 130


async def test_transition_and_resolve_prefix(repo: AsyncModelRepository) -> None:
    m = await repo.save(sample("t"))
    moved = await repo.transition(m.id, "training")
    assert (await repo.get(m.id)).status is ModelStatus.TRAINING == moved.status
    with pytest.raises(errors.IllegalTransitionError):
        await repo.transition(m.id, "deployed")
    assert await repo.resolve(m.id[:18].lower()) == m.id
    with pytest.raises(errors.ModelNotFoundError):
        await repo.resolve("ZZZZZZ")
    await repo.save_many([sample("t", i) for i in range(3)])
    with pytest.raises(errors.AmbiguousIdError, match="several"):
        await repo.resolve(m.id[:2])


async def test_concurrent_gets_are_served_together(repo: AsyncModelRepository) -> None:
    import asyncio

    models = await repo.save_many([sample("c", i) for i in range(100)])
    got = await asyncio.gather(
        *(repo.get(m.id) for m in models), repo.find_by_id("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    )
    assert [g.id for g in got[:-1] if g is not None] == [m.id for m in models]
    assert got[-1] is None


def test_sync_facade_shares_the_contract(target: Target) -> None:
    with ModelRegistry(target.url, target.options) as reg:
        a = reg.save(sample("s"))
        b = reg.save(sample("s", 1))
        assert (a.version, b.version) == (1, 2)
        assert reg.get(b.id) == b
        many = reg.save_many([sample("s", i) for i in range(1200)])
        assert max(m.version or 0 for m in many) == 1202
        assert reg.count(ModelFilter(name="s")) == 1202
        assert [m.id for m in reg.get_many([b.id, a.id])] == [b.id, a.id]
        page = reg.find(ModelFilter(tags={"batch": "2"}), limit=100)
        rest = list(reg.iterate(ModelFilter(tags={"batch": "2"})))
        assert [m.id for m in page.items] == [m.id for m in rest[:100]] and len(rest) == 400
        assert reg.transition(a.id, "training").status is ModelStatus.TRAINING
        assert reg.resolve(a.id.lower()) == a.id
        assert reg.delete_many([a.id, b.id]) == 2 and reg.delete(a.id) is False
        cursor = page.next_cursor
        with pytest.raises(errors.InvalidCursorError):
            reg.find(limit=100, cursor=cursor)
        with pytest.raises(errors.ModelNotFoundError):
            reg.get(a.id)


async def test_sync_and_async_cursors_interoperate(target: Target) -> None:
    async with AsyncModelRepository(target.url, target.options) as repo:
        await repo.save_many([sample("i", i) for i in range(10)])
        first = await repo.find(limit=4)
    with ModelRegistry(target.url, target.options) as reg:
        second = reg.find(limit=4, cursor=first.next_cursor)
    assert {m.id for m in first.items}.isdisjoint(m.id for m in second.items)
    assert len(second.items) == 4


async def test_migrations_are_idempotent_and_url_errors_clear(target: Target) -> None:
    for _ in range(2):
        async with AsyncModelRepository(target.url, target.options) as repo:
            await repo.save(sample("mig"))
    async with AsyncModelRepository(target.url, target.options) as repo:
        assert await repo.count() == 2
    with pytest.raises(errors.InvalidInputError, match="unsupported registry URL"):
        AsyncModelRepository("mysql://x/y")
    from hikyuu_qlib.registry import migrate

    assert migrate.head_revision() == migrate.HEAD  # the fast path's constant follows the migrations


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


async def test_both_backends_store_the_same_values_and_refuse_the_same(
    repo: AsyncModelRepository, target: Target
) -> None:
    # at the limits: every backend stores them and gives them back unchanged
    edge = sample(
        "名" * 200,
        feature_set="f" * 200,
        universe="u" * 200,
        label="é\u2028 ✓",
        hyperparameters={"max": 2**64 - 1, "min": -(2**63), "deep": _nested(253), "s": "ü"},
        tags={"ключ": "値"},
    )
    saved = await repo.save(edge)
    assert await repo.get(saved.id) == saved
    with ModelRegistry(target.url, target.options) as reg:
        assert reg.get(saved.id) == saved
        assert reg.save_many([sample("f" * 200, 1)])[0].version == 1
    # beyond them: refused when the record is made, the same way for both (never a driver error at save)
    refused = [
        ({"name": "n" * 201}, errors.InvalidInputError),
        ({"feature_set": "f" * 201}, errors.InvalidInputError),
        ({"name": "nul\x00name"}, errors.InvalidInputError),
        ({"label": "nul\x00"}, errors.InvalidInputError),
        ({"tags": {"owner": "nul\x00"}}, errors.InvalidInputError),
        ({"hyperparameters": {"objective": "nul\x00"}}, errors.InvalidHyperparametersError),
        ({"hyperparameters": {"seed": 2**64}}, errors.InvalidHyperparametersError),
        ({"metrics": {"n": -(2**63) - 1}}, errors.InvalidMetricsError),
        ({"hyperparameters": {"deep": _nested(254)}}, errors.InvalidHyperparametersError),
    ]
    for changes, error in refused:
        name = str(changes.pop("name", "refused"))
        with pytest.raises(error):
            await repo.save(sample(name, **changes))
    assert await repo.count() == 2
