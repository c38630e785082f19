"""``hq model …`` through the real entrypoint, on a SQLite file and on PostgreSQL (``--db``)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cli_support import run_hq
from ulid import ULID

from hikyuu_qlib.app import open_registry
from hikyuu_qlib.domain.model import Model

hq = run_hq


def seed(db: str) -> list[Model]:
    models = []
    start = dt.datetime.now(dt.UTC)
    for i in range(7):
        m = Model.new("alpha" if i % 2 else "beta", "mlp" if i == 3 else "lightgbm",
                      metrics={"ic": 0.01 * i, "rank_ic": 0.02 * i}, tags={"batch": str(i % 2)},
                      now=start + dt.timedelta(milliseconds=50 * i))
        models.append(m.transition("training").transition("trained") if i < 5 else m)
    with open_registry(db, sync=True) as registry:
        return registry.save_many(models)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    pg_url = request.getfixturevalue("pg_url")
    schema = f"hq_cli_{str(ULID()).lower()}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_list_pages_with_cursor_as_json(db: str) -> None:
    saved = seed(db)
    first = hq("model", "list", "--db", db, "--limit", "4", "--format", "json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["rows"] == 4 and doc["next_cursor"]
    second = json.loads(hq("model", "list", "--db", db, "--limit", "4", "--cursor", doc["next_cursor"],
                           "--format", "json").stdout)
    assert second["next_cursor"] is None
    ids = [m["id"] for m in doc["models"] + second["models"]]
    assert ids == [m.id for m in reversed(saved)]  # newest first, ids whole


def test_list_filters_and_table(db: str) -> None:
    saved = seed(db)
    proc = hq("model", "list", "--db", db, "--status", "trained", "--type", "lightgbm", "--tag", "batch=1",
              "--format", "json")
    doc = json.loads(proc.stdout)
    want = {m.id for m in saved if m.status.value == "trained" and m.model_type.value == "lightgbm"
            and m.tags["batch"] == "1"}
    assert {m["id"] for m in doc["models"]} == want and want
    by_name = json.loads(hq("model", "list", "--db", db, "--name", "beta", "--format", "json").stdout)
    assert {m["name"] for m in by_name["models"]} == {"beta"}
    table = hq("model", "list", "--db", db, "--limit", "2")
    assert table.returncode == 0
    assert saved[-1].id in table.stdout and "rank_ic" in table.stdout
    assert "next cursor: " in table.stderr and "next cursor" not in table.stdout


def test_show_promote_rm_with_prefixes(db: str) -> None:
    saved = seed(db)
    trained = saved[0]
    others = [m.id for m in saved[1:]]
    size = next(n for n in range(1, 27) if not any(o.startswith(trained.id[:n]) for o in others))
    assert size < 26
    shown = hq("model", "show", trained.id[:size].lower(), "--db", db, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == trained.id
    promoted = hq("model", "promote", trained.id, "--to", "deployed", "--db", db, "--format", "json")
    assert json.loads(promoted.stdout)["to"] == "deployed"
    illegal = hq("model", "promote", trained.id, "--to", "training", "--db", db)
    assert illegal.returncode == 2 and "cannot go from deployed to training" in illegal.stderr
    removed = hq("model", "rm", saved[1].id, saved[2].id, "--db", db, "--format", "json")
    assert json.loads(removed.stdout) == {"deleted": 2, "ids": [saved[1].id, saved[2].id]}
    gone = hq("model", "show", saved[1].id, "--db", db)
    assert gone.returncode == 3 and saved[1].id in gone.stderr


def test_ambiguous_and_bad_input(db: str, tmp_path: Path) -> None:
    seed(db)
    ambiguous = hq("model", "show", "0", "--db", db)
    assert ambiguous.returncode == 2 and "matches several models" in ambiguous.stderr
    bad_cursor = hq("model", "list", "--db", db, "--cursor", "abc.def")
    assert bad_cursor.returncode == 2 and "invalid cursor" in bad_cursor.stderr
    bad_status = hq("model", "list", "--db", db, "--status", "done")
    assert bad_status.returncode == 2 and "'done'" in bad_status.stderr
    bad_tag = hq("model", "list", "--db", db, "--tag", "novalue")
    assert bad_tag.returncode == 2 and "'novalue'" in bad_tag.stderr


def test_database_url_from_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    saved = seed(url)
    env = {**os.environ, "HQ_DATABASE_URL": url}
    proc = hq("model", "list", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"] == len(saved)
