"""Keyset paging under concurrent inserts, and SQLite query plans that use an index for every filter/order."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest
from registry_support import Target, make_target, sample

from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.registry import AsyncModelRepository, ModelFilter, ModelOrder, ModelRegistry, writes
from hikyuu_qlib.registry import query as statements
from hikyuu_qlib.registry.driver import RowCodec, compile_statement

N = 10_000


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with make_target(request.param, request, tmp_path_factory) as t:
        yield t


@pytest.mark.slow
@pytest.mark.parametrize("order", ["created", "-created", "name"])
async def test_paging_while_others_insert_skips_and_repeats_nothing(target: Target, order: str) -> None:
    async with AsyncModelRepository(target.url, target.options) as repo:
        start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        initial = await repo.save_many(
            [sample(f"page-{i % 4}", i, now=start + dt.timedelta(seconds=i)) for i in range(N)]
        )
        present = {m.id for m in initial}
        stop = asyncio.Event()
        inserted = 0

        async def inserter() -> None:
            nonlocal inserted
            i = 0
            while not stop.is_set():
                # new names and later times land on both sides of the reader's position
                await repo.save(sample(f"page-{i % 6}", i))
                inserted += 1
                i += 1
                await asyncio.sleep(0)

        async def reader() -> list[str]:
            seen: list[str] = []
            cursor = None
            try:
                while True:
                    page = await repo.find(order=order, limit=250, cursor=cursor)
                    seen.extend(m.id for m in page.items)
                    if page.next_cursor is None:
                        return seen
                    cursor = page.next_cursor
            finally:
                stop.set()

        task = asyncio.create_task(inserter())
        seen = await reader()
        await task
        assert inserted > 0, "nothing was inserted while paging: the test proved nothing"
        seen_initial = [i for i in seen if i in present]
        assert len(seen_initial) == len(set(seen_initial)), "a record present at the start was repeated"
        assert set(seen_initial) == present, f"{len(present - set(seen_initial))} records were skipped"
        assert len(seen) == len(set(seen))


def _plan(registry: ModelRegistry, stmt: object) -> str:
    compiled = compile_statement(stmt, registry.engine.dialect)  # type: ignore[arg-type]
    return _plan_sql(registry, compiled.sql, compiled.params)


def _plan_sql(registry: ModelRegistry, sql: str, params: object) -> str:
    raw = registry.engine.raw_connection()
    try:
        rows = raw.cursor().execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    finally:
        raw.close()
    return " | ".join(r[-1] for r in rows)


def test_sqlite_query_plans_use_indexes(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    with (
        make_target("sqlite", request, tmp_path_factory) as target,
        ModelRegistry(target.url, target.options) as registry,
    ):
        registry.save_many(
            [
                sample(f"plan-{i % 50}", i, model_type=("mlp", "lightgbm", "linear")[i % 3])
                for i in range(3000)
            ]
        )
        raw = registry.engine.raw_connection()
        raw.cursor().execute("ANALYZE")
        raw.commit()
        raw.close()
        after = [1_700_000_000_000_000, "01HZZZZZZZZZZZZZZZZZZZZZZZ"]
        t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        cases = {
            "no filter, created": (ModelFilter(), ModelOrder.CREATED, "ix_models_created"),
            "no filter, -created": (ModelFilter(), ModelOrder.CREATED_DESC, "ix_models_created"),
            "no filter, name": (ModelFilter(), ModelOrder.NAME, "uq_models_name_version"),
            "status": (ModelFilter(status="training"), ModelOrder.CREATED, "ix_models_status_created"),
            "type": (ModelFilter(model_type="mlp"), ModelOrder.CREATED, "ix_models_type_created"),
            "name": (ModelFilter(name="plan-3"), ModelOrder.NAME, "uq_models_name_version"),
            "tag": (ModelFilter(tags={"batch": "1"}), ModelOrder.CREATED, "ix_model_tags_key_value"),
            "created range": (
                ModelFilter(created_from=t0, created_to=t0 + dt.timedelta(days=1)),
                ModelOrder.CREATED,
                "ix_models_created",
            ),
        }
        for label, (flt, order, index) in cases.items():
            keys = after if order in (ModelOrder.CREATED, ModelOrder.CREATED_DESC) else ["plan-3", 10]
            for cursor_keys in (None, keys):
                plan = _plan(registry, statements.find_statement(flt, order, cursor_keys, 101, "sqlite"))
                assert index in plan, f"{label} (cursor={cursor_keys is not None}): {plan}"
                assert "SCAN models" not in plan.replace(f"SCAN models USING INDEX {index}", ""), (
                    f"{label}: full table scan: {plan}"
                )
            if cursor_keys is not None and order is not ModelOrder.NAME and not flt.tags:
                plan = _plan(registry, statements.find_statement(flt, order, keys, 101, "sqlite"))
                assert "SEARCH" in plan, f"{label}: the cursor does not seek the index: {plan}"
        get_plan = _plan(registry, statements.get_statement().params(id="X"))
        # models is clustered on id (WITHOUT ROWID): a get is one seek of the primary key
        assert "SEARCH models USING PRIMARY KEY (id=?)" in get_plan, get_plan
        count_plan = _plan(registry, statements.count_statement(ModelFilter(status="created"), "sqlite"))
        assert "ix_models_status_created" in count_plan, count_plan
        prefix_plan = _plan(registry, statements.prefix_statement("01H"))
        assert "SEARCH" in prefix_plan, prefix_plan
        # writes seek too: the save's upsert (version of the name, stored tag rows) and the batch upsert
        model = Model.new("plan", "lightgbm", tags={"k": "v"})
        upsert = compile_statement(statements.upsert_one_statement("sqlite"), registry.engine.dialect)
        defaults = {k: v for k, v in upsert.params.items() if v is not None}
        save_plan = _plan_sql(registry, upsert.sql, {**defaults, **RowCodec.params(model)})
        assert "SCAN" not in save_plan.replace("SCAN CONSTANT ROW", ""), save_plan
        assert "model_tags USING PRIMARY KEY" in save_plan and "uq_models_name_version" in save_plan, (
            save_plan
        )
        chunk = writes.chunks([model, Model.new("plan", "lightgbm")], "sqlite")[0]
        many_plan = _plan_sql(registry, chunk.sql or "", chunk.params)
        assert "SCAN models" not in many_plan and "SCAN k" not in many_plan and "SCAN m" not in many_plan, (
            many_plan
        )
