"""``hq model …`` through the real entrypoint (in this process: :func:`cli_support.run_hq_here`), on a
SQLite file and on PostgreSQL (``--db``)."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cli_support import run_hq_here
from ulid import ULID

from hikyuu_qlib.app import open_registry
from hikyuu_qlib.domain.model import Model

hq = run_hq_here


def seed(db: str) -> list[Model]:
    models = []
    start = dt.datetime.now(dt.UTC)
    for i in range(7):
        m = Model.new(
            "alpha" if i % 2 else "beta",
            "mlp" if i == 3 else "lightgbm",
            metrics={"ic": 0.01 * i, "rank_ic": 0.02 * i},
            tags={"batch": str(i % 2)},
            now=start + dt.timedelta(milliseconds=50 * i),
        )
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
    second = json.loads(
        hq(
            "model", "list", "--db", db, "--limit", "4", "--cursor", doc["next_cursor"], "--format", "json"
        ).stdout
    )
    assert second["next_cursor"] is None
    ids = [m["id"] for m in doc["models"] + second["models"]]
    assert ids == [m.id for m in reversed(saved)]  # newest first, ids whole


def test_list_filters_and_table(db: str) -> None:
    saved = seed(db)
    proc = hq(
        "model",
        "list",
        "--db",
        db,
        "--status",
        "trained",
        "--type",
        "lightgbm",
        "--tag",
        "batch=1",
        "--format",
        "json",
    )
    doc = json.loads(proc.stdout)
    want = {
        m.id
        for m in saved
        if m.status.value == "trained" and m.model_type.value == "lightgbm" and m.tags["batch"] == "1"
    }
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


def test_unusual_paths_open_where_they_point(tmp_path: Path) -> None:
    folder = tmp_path / "a #b?c%d é"
    db = f"sqlite:///{folder}/registry.db"
    saved = seed(db)
    assert (folder / "registry.db").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # nothing at a path cut at "#" or "?"
    proc = hq("model", "list", "--db", db, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert {m["id"] for m in json.loads(proc.stdout)["models"]} == {m.id for m in saved}
    # the default registry under an HQ_HOME with the same characters
    from hikyuu_qlib.settings import Settings

    home = tmp_path / "home #?% é"
    env = {k: v for k, v in os.environ.items() if k != "HQ_DATABASE_URL"} | {"HQ_HOME": str(home)}
    seed(Settings(home=home).registry_url)
    assert (home / "registry.db").is_file()
    listed = hq("model", "list", "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["rows"] == 7


def test_read_only_commands_never_create_a_registry(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "registry.db"
    for args in (
        ("list",),
        ("list", "--format", "json"),
        ("show", "01ARZ3NDEK"),
        ("rm", "01ARZ3NDEK"),
        ("promote", "01ARZ3NDEK"),
    ):
        proc = hq("model", *args, "--db", f"sqlite:///{missing}")
        assert proc.returncode == 3, (args, proc.stderr)
        flat = proc.stderr.replace("\n", "")  # (long lines wrap at 80 columns)
        assert f"no registry at {missing}: the file does not exist" in flat
    assert not (tmp_path / "nowhere").exists()
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HQ_DATABASE_URL"} | {"HQ_HOME": str(home)}
    proc = hq("model", "list", env=env)
    assert proc.returncode == 3 and "no registry at" in proc.stderr.replace("\n", "")
    assert list(home.iterdir()) == []


def test_passwords_in_registry_urls_are_masked(pg_url: str) -> None:
    secret = "s3cret-in-url"
    host = pg_url.split("@", 1)[1].rsplit("/", 1)[0]
    missing_db = f"postgresql://postgres:{secret}@{host}/hq_no_such_db_{str(ULID()).lower()}"
    proc = hq("model", "list", "--db", missing_db)
    assert proc.returncode == 3, proc.stderr
    flat = proc.stderr.replace("\n", "")
    assert f"postgres:***@{host}/hq_no_such_db" in flat and "does not exist" in flat
    assert secret not in proc.stderr
    # nothing listens on port 1: transient faults until the deadline, logged and reported masked
    env = {**os.environ, "HQ_REGISTRY_RETRY_DEADLINE": "0.5"}
    refused = hq(
        "-v",
        "--log-format",
        "json",
        "model",
        "list",
        "--db",
        f"postgresql://postgres:{secret}@127.0.0.1:1/test",
        env=env,
    )
    assert refused.returncode == 1, refused.stderr
    logged = [json.loads(line)["msg"] for line in refused.stderr.splitlines() if line.startswith("{")]
    assert any(
        m.startswith("transient fault of registry postgresql://postgres:***@127.0.0.1:1/test") for m in logged
    ), refused.stderr
    assert "postgres:***@127.0.0.1:1/test" in refused.stderr.replace("\n", "").split("error:")[-1]
    assert secret not in refused.stderr
    bad = hq("model", "list", "--db", f"mysql://root:{secret}@db.example/x")
    assert bad.returncode == 2 and "root:***@db.example" in bad.stderr.replace("\n", "")
    assert secret not in bad.stderr
