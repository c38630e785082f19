"""A model's artifacts by role, in one JSON column.

``models.artifacts`` holds ``{role: {"uri", "sha256", "size"}}`` and replaces the ``artifact_uri``,
``artifact_sha256`` and ``artifact_size`` columns. Existing records are carried over:

- the ``artifact_*`` columns become the ``model`` role;
- the processors' artifact, kept until now in the string tags ``processors_uri``, ``processors_sha256`` and
  ``processors_size``, becomes the ``processors`` role and those tags are removed. Tags that do not make a
  valid reference (an empty URI, a sha256 that is not 64 lowercase hex digits, a size that is not a whole
  number) stay tags.

One column keeps a save at one statement: the artifacts are bound with the row.
SQLite rebuilds ``models`` (WITHOUT ROWID, as in 0002) and its tag index; PostgreSQL alters the table in
place. The downgrade puts the ``model`` and ``processors`` roles back; other roles are dropped.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_STATE_TAGS = ("processors_uri", "processors_sha256", "processors_size")
_STATE_NAMES = ", ".join(f"'{tag}'" for tag in _STATE_TAGS)
_FIXED = (
    "id",
    "name",
    "version",
    "model_type",
    "status",
    "hyperparameters",
    "feature_set",
    "universe",
    "segments",
    "label",
    "metrics",
)
_TAIL = ("config_hash", "created_at", "updated_at")
_INDEXES = {
    "uq_models_name_version": (["name", "version"], True),
    "ix_models_created": (["created_at", "id"], False),
    "ix_models_status_created": (["status", "created_at", "id"], False),
    "ix_models_type_created": (["model_type", "created_at", "id"], False),
}


def _models_table(name: str, *, artifacts: bool) -> None:
    """``models`` as of this revision (``artifacts`` last, where PostgreSQL's ALTER TABLE adds it, so that
    both backends keep one column order) or of 0002 (the three ``artifact_*`` columns after ``metrics``)."""
    old_artifacts = (
        ()
        if artifacts
        else (
            sa.Column("artifact_uri", sa.Text, nullable=True),
            sa.Column("artifact_sha256", sa.String(64), nullable=True),
            sa.Column("artifact_size", sa.BigInteger, nullable=True),
        )
    )
    new_artifacts = (sa.Column("artifacts", sa.JSON, nullable=False),) if artifacts else ()
    op.create_table(
        name,
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("model_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("hyperparameters", sa.JSON, nullable=False),
        sa.Column("feature_set", sa.String(200), nullable=False),
        sa.Column("universe", sa.String(200), nullable=False),
        sa.Column("segments", sa.JSON, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        *old_artifacts,
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        *new_artifacts,
        sqlite_with_rowid=False,
    )


def _sqlite_rebuild(*, artifacts: bool, artifact_values: str, tags: str) -> None:
    """Copy ``models`` into the other shape (new columns computed by the given SQL expressions), put it in
    its place and rebuild the tag index (dropping ``models`` cascades to ``model_tags``, see 0002)."""
    _models_table("models_rebuilt", artifacts=artifacts)
    targets = ["artifacts"] if artifacts else ["artifact_uri", "artifact_sha256", "artifact_size"]
    columns = ", ".join([*_FIXED, *targets, "tags", *_TAIL])
    op.execute(
        f"INSERT INTO models_rebuilt ({columns}) "
        f"SELECT {', '.join(_FIXED)}, {artifact_values}, {tags}, {', '.join(_TAIL)} FROM models"
    )
    op.drop_table("models")
    op.rename_table("models_rebuilt", "models")
    for index, (cols, unique) in _INDEXES.items():
        op.create_index(index, "models", cols, unique=unique)
    op.execute("DELETE FROM model_tags")
    op.execute(
        "INSERT INTO model_tags (model_id, key, value) "
        "SELECT m.id, j.key, j.value FROM models AS m, json_each(m.tags) AS j"
    )


# --- SQLite -----------------------------------------------------------------------------------------


def _sqlite_tag(name: str) -> str:
    return f"json_extract(tags, '$.{name}')"


_SQLITE_STATE_OK = (
    f"(json_type(tags, '$.processors_uri') = 'text' AND {_sqlite_tag('processors_uri')} <> '' "
    f"AND json_type(tags, '$.processors_sha256') = 'text' AND length({_sqlite_tag('processors_sha256')}) = 64 "
    f"AND {_sqlite_tag('processors_sha256')} NOT GLOB '*[^0-9a-f]*' "
    f"AND json_type(tags, '$.processors_size') = 'text' "
    f"AND length({_sqlite_tag('processors_size')}) BETWEEN 1 AND 18 "
    f"AND {_sqlite_tag('processors_size')} NOT GLOB '*[^0-9]*')"
)
_SQLITE_ARTIFACTS = (
    "json_patch("
    "CASE WHEN artifact_uri IS NULL THEN '{}' ELSE json_object('model', json_object("
    "'uri', artifact_uri, 'sha256', artifact_sha256, 'size', artifact_size)) END, "
    f"CASE WHEN {_SQLITE_STATE_OK} THEN json_object('processors', json_object("
    f"'uri', {_sqlite_tag('processors_uri')}, 'sha256', {_sqlite_tag('processors_sha256')}, "
    f"'size', CAST({_sqlite_tag('processors_size')} AS INTEGER))) ELSE '{{}}' END)"
)
_SQLITE_STATE_PATHS = ", ".join(f"'$.{tag}'" for tag in _STATE_TAGS)
_SQLITE_TAGS = f"CASE WHEN {_SQLITE_STATE_OK} THEN json_remove(tags, {_SQLITE_STATE_PATHS}) ELSE tags END"


def _sqlite_role(role: str, key: str) -> str:
    return f"json_extract(artifacts, '$.{role}.{key}')"


_SQLITE_BACK_ARTIFACT = ", ".join(_sqlite_role("model", k) for k in ("uri", "sha256", "size"))
_SQLITE_BACK_TAGS = (
    "CASE WHEN json_type(artifacts, '$.processors') IS NULL THEN tags ELSE json_patch(tags, json_object("
    f"'processors_uri', {_sqlite_role('processors', 'uri')}, "
    f"'processors_sha256', {_sqlite_role('processors', 'sha256')}, "
    f"'processors_size', CAST({_sqlite_role('processors', 'size')} AS TEXT))) END"
)

# --- PostgreSQL -------------------------------------------------------------------------------------

_PG_STATE_OK = (
    "(tags->>'processors_uri' <> '' AND tags->>'processors_sha256' ~ '^[0-9a-f]{64}$' "
    "AND tags->>'processors_size' ~ '^[0-9]{1,18}$')"
)
_PG_UPGRADE = (
    "UPDATE models SET "
    "artifacts = CASE WHEN artifact_uri IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('model', "
    "jsonb_build_object('uri', artifact_uri, 'sha256', artifact_sha256, 'size', artifact_size)) END "
    f"|| CASE WHEN {_PG_STATE_OK} THEN jsonb_build_object('processors', jsonb_build_object("
    "'uri', tags->>'processors_uri', 'sha256', tags->>'processors_sha256', "
    "'size', CAST(tags->>'processors_size' AS bigint))) ELSE '{}'::jsonb END, "
    f"tags = CASE WHEN {_PG_STATE_OK} THEN tags - ARRAY[{_STATE_NAMES}]::text[] ELSE tags END "
    "WHERE artifact_uri IS NOT NULL OR tags ? 'processors_uri'"
)
_PG_DOWNGRADE = (
    "UPDATE models SET "
    "artifact_uri = artifacts #>> '{model,uri}', artifact_sha256 = artifacts #>> '{model,sha256}', "
    "artifact_size = CAST(artifacts #>> '{model,size}' AS bigint), "
    "tags = CASE WHEN artifacts ? 'processors' THEN tags || jsonb_build_object("
    "'processors_uri', artifacts #>> '{processors,uri}', 'processors_sha256', artifacts #>> '{processors,sha256}', "
    "'processors_size', artifacts #>> '{processors,size}') ELSE tags END "
    "WHERE artifacts <> '{}'::jsonb"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(artifacts=True, artifact_values=_SQLITE_ARTIFACTS, tags=_SQLITE_TAGS)
        return
    op.execute("ALTER TABLE models ADD COLUMN artifacts jsonb NOT NULL DEFAULT '{}'::jsonb")
    op.execute(_PG_UPGRADE)
    op.execute("ALTER TABLE models ALTER COLUMN artifacts DROP DEFAULT")
    op.execute(
        "ALTER TABLE models DROP COLUMN artifact_uri, DROP COLUMN artifact_sha256, DROP COLUMN artifact_size"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(artifacts=False, artifact_values=_SQLITE_BACK_ARTIFACT, tags=_SQLITE_BACK_TAGS)
        return
    op.execute(
        "ALTER TABLE models ADD COLUMN artifact_uri text, ADD COLUMN artifact_sha256 varchar(64), "
        "ADD COLUMN artifact_size bigint"
    )
    op.execute(_PG_DOWNGRADE)
    op.execute("ALTER TABLE models DROP COLUMN artifacts")
