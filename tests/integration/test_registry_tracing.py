"""Spans of the registry's own statements (the hot paths run on driver connections, which SQLAlchemy's
instrumentation cannot see), exported for real to a JSON-lines file, on SQLite and PostgreSQL; with tracing
off the plain drivers run and nothing is traced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_support import Target, make_target, sample

from hikyuu_qlib.observability.statements import statement_name
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.observability.tracing import Tracing
from hikyuu_qlib.registry import AsyncModelRepository, ModelRegistry
from hikyuu_qlib.registry.point_reads import PgPointReader, SqlitePointReader


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with make_target(request.param, request, tmp_path_factory) as t:
        yield t


def _spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _children(spans: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in spans if s["parent_id"] == parent["context"]["span_id"]]


async def test_registry_statements_are_client_spans_under_their_operation(
    target: Target, tmp_path: Path
) -> None:
    traces = tmp_path / "spans.jsonl"
    tracing = Tracing.from_env({"OTEL_TRACES_EXPORTER": "jsonl"}, traces_file=traces)
    telemetry = Telemetry(tracing=tracing)
    with ModelRegistry(target.url, target.options, telemetry=telemetry) as reg:
        saved = reg.save(sample("traced"))
        assert reg.get(saved.id) == saved
    async with AsyncModelRepository(target.url, target.options, telemetry=telemetry) as repo:
        assert await repo.get(saved.id) == saved  # the point read
        assert await repo.get_many([saved.id]) == [saved]  # the pooled path
        await repo.save(sample("traced", 1))
    tracing.shutdown()
    spans = _spans(traces)
    operations = [s for s in spans if s["name"].startswith("registry.")]
    for op in ("registry.save", "registry.get", "registry.get_many"):
        for span in (s for s in operations if s["name"] == op):
            statements = _children(spans, span)
            assert statements, f"{op} has no statement span"
            for st in statements:
                assert st["kind"] == "SpanKind.CLIENT"
                attributes = st["attributes"]
                assert attributes["db.system"] == target.backend
                assert st["name"] == statement_name(attributes["db.statement"])[0]
                assert saved.id not in attributes["db.statement"]  # markers, never the bound values
    gets = [s for s in operations if s["name"] == "registry.get"]
    assert len(gets) == 2  # the sync get and the async point read
    assert all(c["name"] == "SELECT models" for g in gets for c in _children(spans, g))
    if target.backend == "postgresql":
        statement = next(s for s in spans if s["name"] == "SELECT models")
        assert statement["attributes"]["net.peer.port"] == 5432


async def test_without_tracing_the_plain_drivers_run(target: Target, tmp_path: Path) -> None:
    async with AsyncModelRepository(target.url, target.options) as repo:
        assert repo._core.statement_spans is None
        assert type(repo._sqlite_reader or repo._pg_reader) in (SqlitePointReader, PgPointReader)
    tracing = Tracing.from_env({"OTEL_TRACES_EXPORTER": "jsonl"}, traces_file=tmp_path / "t.jsonl")
    async with AsyncModelRepository(target.url, target.options, telemetry=Telemetry(tracing=tracing)) as repo:
        assert repo._core.statement_spans is not None
        assert type(repo._sqlite_reader or repo._pg_reader) not in (SqlitePointReader, PgPointReader)
    tracing.shutdown()


def test_statement_names_follow_the_conventions() -> None:
    assert statement_name("SELECT id, name FROM models WHERE id = ?") == ("SELECT models", "SELECT")
    assert statement_name("INSERT INTO models (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET x = 1")[0] == (
        "INSERT models"
    )
    assert statement_name("UPDATE models SET status = %(s)s")[0] == "UPDATE models"
    assert statement_name('DELETE FROM "models" WHERE id = ANY(%(ids)s)')[0] == "DELETE models"
    assert statement_name("BEGIN IMMEDIATE") == ("BEGIN", "BEGIN")
    assert (
        statement_name("WITH n AS (SELECT 1) INSERT INTO model_names VALUES (1)")[0] == "INSERT model_names"
    )
