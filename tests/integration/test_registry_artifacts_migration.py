"""Migration 0003 on a 0002 registry holding real-shaped rows, on SQLite and PostgreSQL: the artifact columns
become the ``model`` role, the processors' three tags the ``processors`` role; every other tag, version and
field is kept; the downgrade gives the 0002 rows back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from registry_support import Target, make_target

from hikyuu_qlib.domain.model import ArtifactRef, Model, ModelStatus
from hikyuu_qlib.domain.queries import ModelFilter
from hikyuu_qlib.registry import AsyncModelRepository, ModelRegistry, migrate
from hikyuu_qlib.registry.engine import WRITE, create_sync_registry_engine
from hikyuu_qlib.registry.tables import COLUMNS

BOOSTER = ArtifactRef("file:///store/ab/cdef", "a" * 64, 123_456)
STATE = ArtifactRef("file:///store/12/3456", "b" * 64, 789)
STATE_TAGS = {
    "processors_uri": STATE.uri,
    "processors_sha256": STATE.sha256,
    "processors_size": str(STATE.size),
}
BAD_STATE = {"processors_uri": "file:///x", "processors_sha256": "c" * 64, "processors_size": "12kb"}


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with make_target(request.param, request, tmp_path_factory) as t:
        yield t


def _old_rows() -> list[dict[str, Any]]:
    """Rows as the 0002 schema holds them, one of each kind the old code wrote (and two odd ones)."""
    kinds: list[tuple[ArtifactRef | None, dict[str, str], str]] = [
        (BOOSTER, {"source": "qlib:/data", "team": "a", **STATE_TAGS}, "trained"),  # train_and_register
        (BOOSTER, {"team": "a"}, "deployed"),  # trained before the processors were stored
        (None, {}, "created"),  # no artifact yet
        (None, {"failure": "its test IC is zero (0)", "team": "b"}, "failed"),
        (BOOSTER, {"team": "b", **BAD_STATE}, "trained"),  # not a reference: stays tags
        (None, dict(STATE_TAGS), "archived"),  # processors without a model file
    ]
    rows = []
    for i in range(24):
        artifact, tags, status = kinds[i % len(kinds)]
        rows.append(
            {
                "id": f"01K{i:023d}",
                "name": f"m{i % 4}",
                "version": i // 4 + 1,
                "model_type": "lightgbm",
                "status": status,
                "hyperparameters": json.dumps({"num_leaves": i}),
                "feature_set": "alpha158",
                "universe": "csi300",
                "segments": json.dumps({"train": ["2016-01-01", "2016-12-31"]}),
                "label": "Ref($close, -2)/Ref($close, -1) - 1",
                "metrics": json.dumps({"ic": 0.01 * i}),
                "artifact_uri": artifact and artifact.uri,
                "artifact_sha256": artifact and artifact.sha256,
                "artifact_size": artifact and artifact.size,
                "tags": json.dumps(tags),
                "config_hash": f"{i:064x}",
                "created_at": 1_700_000_000_000_000 + i,
                "updated_at": 1_700_000_000_000_000 + 2 * i,
            }
        )
    return rows


def _at(
    target: Target, revision: str, rows: list[dict[str, Any]] | None = None, *, down: bool = False
) -> None:
    """Bring the database to ``revision`` (up, or down) and insert ``rows`` in that schema."""
    _, engine = create_sync_registry_engine(target.url, target.options)
    config = migrate._config()
    try:
        with engine.execution_options(**WRITE).begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
            if rows:
                json_cast = "CAST(:{} AS jsonb)" if target.backend == "postgresql" else ":{}"
                cols = list(rows[0])
                json_cols = {"hyperparameters", "segments", "metrics", "tags"}
                values = ", ".join(json_cast.format(c) if c in json_cols else f":{c}" for c in cols)
                conn.execute(sa.text(f"INSERT INTO models ({', '.join(cols)}) VALUES ({values})"), rows)
                if target.backend == "postgresql":
                    conn.execute(
                        sa.text(
                            "INSERT INTO model_names (name, last_version) "
                            "SELECT name, max(version) FROM models GROUP BY name"
                        )
                    )
                else:
                    conn.execute(
                        sa.text(
                            "INSERT INTO model_tags (model_id, key, value) "
                            "SELECT m.id, j.key, j.value FROM models AS m, json_each(m.tags) AS j"
                        )
                    )
    finally:
        engine.dispose()


def _raw(target: Target) -> list[dict[str, Any]]:
    _, engine = create_sync_registry_engine(target.url, target.options)
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM models ORDER BY id"))]
    finally:
        engine.dispose()
    for row in rows:
        for key in ("hyperparameters", "segments", "metrics", "tags"):
            if isinstance(row[key], str):
                row[key] = json.loads(row[key])
    return rows


async def test_upgrade_moves_artifacts_to_roles_and_downgrade_restores_the_rows(target: Target) -> None:
    old = _old_rows()
    _at(target, "0002", old)

    with ModelRegistry(target.url, target.options) as registry:  # opening migrates to head
        models = {m.id: m for m in registry.iterate()}
        assert len(models) == 24
        for row in old:
            model, tags = models[row["id"]], json.loads(row["tags"])
            expected: dict[str, ArtifactRef] = {}
            if row["artifact_uri"] is not None:
                expected["model"] = BOOSTER
            if "processors_sha256" in tags and tags["processors_size"].isdigit():
                expected["processors"] = STATE
                tags = {k: v for k, v in tags.items() if k not in STATE_TAGS}
            assert model.artifacts == expected, row["id"]
            assert model.artifact == expected.get("model")
            assert model.tags == tags, row["id"]
            # everything else is as it was
            assert (model.name, model.version, model.status.value) == (
                row["name"],
                row["version"],
                row["status"],
            )
            assert model.hyperparameters == json.loads(row["hyperparameters"])
            assert model.metrics == json.loads(row["metrics"]) and model.config_hash == row["config_hash"]
            assert model.segments.to_json() == json.loads(row["segments"])
        # tag filters see the tags as they are now (SQLite's tag index was rebuilt)
        assert registry.count(ModelFilter(tags={"processors_sha256": STATE.sha256})) == 0
        assert registry.count(ModelFilter(tags={"processors_size": "12kb"})) == 4
        assert registry.count(ModelFilter(tags={"team": "a"})) == 8
        # migrated records are written and read back in the new form; versions continue per name
        trained = models[old[0]["id"]]
        again = registry.save(trained.with_tags({"note": "after 0003"}))
        assert registry.get(trained.id) == again and again.artifacts == {
            "model": BOOSTER,
            "processors": STATE,
        }
        fresh = registry.save(Model.new("m0", "lightgbm", artifacts={"processors": STATE}))
        assert fresh.version == 7
        assert registry.transition(fresh.id, ModelStatus.TRAINING).artifacts == {"processors": STATE}
    async with AsyncModelRepository(target.url, target.options) as repo:
        assert (await repo.get(trained.id)).artifacts == again.artifacts
        assert [m.artifacts for m in await repo.get_many([r["id"] for r in old])] == [
            models[r["id"]].artifacts for r in old
        ]

    _, engine = create_sync_registry_engine(target.url, target.options)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            == migrate.HEAD
            == "0005"  # 0004 and 0005 (the service's jobs) leave the models table as 0003 made it
        )
        columns = [c["name"] for c in sa.inspect(conn).get_columns("models")]
    engine.dispose()
    assert columns == list(COLUMNS)  # one column order on both backends: ``SELECT *`` rows decode alike

    # down again: the 0002 rows come back (the re-saved one with its new tag and time)
    _at(target, "0002", down=True)
    back = {r["id"]: r for r in _raw(target)}
    for row in old:
        got = back[row["id"]]
        if row["id"] == trained.id:
            assert got["tags"] == {**json.loads(row["tags"]), "note": "after 0003"}
            continue
        assert got["tags"] == json.loads(row["tags"]), row["id"]
        for key in ("artifact_uri", "artifact_sha256", "artifact_size", "updated_at", "version", "status"):
            assert got[key] == row[key], (row["id"], key)
    assert back[fresh.id]["artifact_uri"] is None
    assert back[fresh.id]["tags"] == STATE_TAGS
