"""SQLite storage details of the registry: the 0001 → 0002 migration keeps every model and tag, tag rows
follow saves and deletes, and the WAL is checkpointed by the registry's thread, not by a save."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.domain.queries import ModelFilter
from hikyuu_qlib.registry import ModelRegistry, migrate


def _model(i: int, **tags: str) -> Model:
    return Model.new(f"m{i % 3}", "lightgbm", hyperparameters={"num_leaves": i}, tags=tags)


def _tag_rows(path: Path) -> set[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        return set(conn.execute("SELECT model_id, key, value FROM model_tags"))


def test_upgrade_from_0001_keeps_models_tags_and_versions(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    config = migrate._config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        # rows written by the 0001 schema (its triggers fill model_tags)
        for i in range(30):
            conn.execute(
                sa.text(
                    "INSERT INTO models VALUES (:id, :name, :v, 'lightgbm', 'created', '{}', 'alpha158', 'csi300', "
                    "'{}', 'label', '{}', NULL, NULL, NULL, :tags, '', :t, :t)"
                ),
                {
                    "id": f"01K{i:023d}",
                    "name": f"m{i % 3}",
                    "v": i // 3 + 1,
                    "t": i,
                    "tags": json.dumps({"batch": str(i % 2), "team": "a"}) if i % 5 else "{}",
                },
            )
    engine.dispose()
    before = _tag_rows(path)
    assert len(before) == 2 * 24

    with ModelRegistry(f"sqlite:///{path}") as registry:
        assert registry.count() == 30
        assert _tag_rows(path) == before
        assert registry.count(ModelFilter(tags={"batch": "1"})) == 12
        # new saves continue the version sequence of each name
        saved = registry.save(_model(0, batch="1"))
        assert saved.version == 11
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (migrate.HEAD,)
        assert not conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'models'").fetchone()[0]
        assert "WITHOUT ROWID" in ddl


def test_tag_rows_follow_saves_updates_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with ModelRegistry(f"sqlite:///{path}") as registry:
        a = registry.save(_model(1, team="a", stage="x"))
        b_models = registry.save_many([_model(i, team="b") for i in range(5)] + [_model(9)])
        assert registry.count(ModelFilter(tags={"team": "b"})) == 5
        # re-save with other tags: old keys go, new ones come (single and batch paths)
        registry.save(a.with_tags({"stage": "y"}))
        registry.save_many([b_models[0].with_tags({"team": "c"})])
        rows = _tag_rows(path)
        assert (a.id, "stage", "y") in rows and (a.id, "stage", "x") not in rows
        assert (b_models[0].id, "team", "c") in rows and (b_models[0].id, "team", "b") not in rows
        assert registry.count(ModelFilter(tags={"team": "b"})) == 4
        registry.delete_many([a.id, b_models[1].id])
        rows = _tag_rows(path)
        assert not {r for r in rows if r[0] in {a.id, b_models[1].id}}
        assert rows == {(b_models[0].id, "team", "c")} | {(m.id, "team", "b") for m in b_models[2:5]}
        assert registry.count(ModelFilter(tags={"team": "b"})) == 3


def test_saves_do_not_checkpoint_the_wal_the_thread_does(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    wal = Path(f"{path}-wal")
    with ModelRegistry(f"sqlite:///{path}") as registry:
        registry.save_many([_model(i, batch=str(i)) for i in range(3000)])
        with sqlite3.connect(path) as conn:
            auto = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        # a fresh connection has SQLite's default; the registry's own connections use the backstop
        assert auto == 1000
        raw = registry.engine.raw_connection()
        try:
            assert raw.cursor().execute("PRAGMA wal_autocheckpoint").fetchone()[0] > 10_000
        finally:
            raw.close()
        # the background thread copies the WAL into the database file within a few intervals
        deadline = time.monotonic() + 10
        while path.stat().st_size < 1_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size >= 1_000_000, (path.stat().st_size, wal.stat().st_size)


_SCAN_RSS = """
import json, sys, psutil
from hikyuu_qlib.registry import ModelRegistry
proc = psutil.Process()
with ModelRegistry(sys.argv[1]) as registry:
    ids = [m.id for m in registry.find(limit=50).items]
    registry.get_many(ids)  # warm: imports, pool, statements
    before = proc.memory_info().rss
    n = sum(1 for _ in registry.iterate(batch=1000))
    grown = proc.memory_info().rss - before
    raw = registry.engine.raw_connection()
    mapped = raw.cursor().execute("PRAGMA mmap_size").fetchone()[0]
    raw.close()
print(json.dumps({"n": n, "grown": grown, "mapped": mapped}))
"""

_ASYNC_SCAN_RSS = """
import asyncio, json, sys, psutil
from hikyuu_qlib.registry import AsyncModelRepository

async def main():
    proc = psutil.Process()
    async with AsyncModelRepository(sys.argv[1]) as repo:
        ids = [m.id for m in (await repo.find(limit=50)).items]
        await repo.get_many(ids)  # warm: imports, pool, statements
        before = proc.memory_info().rss
        n = 0
        async for _ in repo.iterate(batch=1000):
            n += 1
        grown = proc.memory_info().rss - before
        async with repo.engine.connect() as conn:
            mapped = (await conn.exec_driver_sql("PRAGMA mmap_size")).scalar()
    print(json.dumps({"n": n, "grown": grown, "mapped": mapped}))

asyncio.run(main())
"""


@pytest.mark.parametrize("script", [_SCAN_RSS, _ASYNC_SCAN_RSS], ids=["sync", "async"])
def test_point_reads_are_mapped_and_scans_are_not(tmp_path: Path, script: str) -> None:
    path = tmp_path / "m.db"
    url = f"sqlite:///{path}"
    with ModelRegistry(url) as registry:
        for start in range(0, 40_000, 10_000):
            registry.save_many([_model(i, batch=str(i % 7)) for i in range(start, start + 10_000)])
        raw = registry.engine.raw_connection()
        try:
            assert (
                raw.cursor().execute("PRAGMA mmap_size").fetchone()[0] >= 1 << 30
            )  # gets read through a map
        finally:
            raw.close()
    size = path.stat().st_size
    assert size > 10 * 2**20
    # a fresh interpreter, so the resident set shows what iterating did: a scan through the map would
    # make every page of the file resident; outside it, SQLite's small cache is all that stays
    out = subprocess.run([sys.executable, "-c", script, url], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["n"] == 40_000
    assert result["grown"] < size / 3, (result, size)
    assert result["mapped"] >= 1 << 30  # the connection maps again once the scan is over
