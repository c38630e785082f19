"""SQLite: models clustered on id (WITHOUT ROWID) and the tag index written by the repository.

Two changes that halve the work of a save on SQLite:
- ``models`` becomes a WITHOUT ROWID table keyed on ``id``: one b-tree (and one page) less per write,
  and a get by id is one seek instead of two.
- the triggers that kept ``model_tags`` in step with ``models.tags`` are dropped: a trigger runs a
  sub-program per row, which cost more than the model row itself in a batch save. The repository now
  rewrites a model's tag rows in the same transaction as its upsert (see ``registry.writes``).

PostgreSQL is unchanged (its tag filter uses the GIN index on ``models.tags``).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_INDEXES = {
    "uq_models_name_version": (["name", "version"], True),
    "ix_models_created": (["created_at", "id"], False),
    "ix_models_status_created": (["status", "created_at", "id"], False),
    "ix_models_type_created": (["model_type", "created_at", "id"], False),
}


def _models_table(name: str, *, rowid: bool) -> None:
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        name,
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("model_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("hyperparameters", json_type, nullable=False),
        sa.Column("feature_set", sa.String(200), nullable=False),
        sa.Column("universe", sa.String(200), nullable=False),
        sa.Column("segments", json_type, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("metrics", json_type, nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=True),
        sa.Column("artifact_sha256", sa.String(64), nullable=True),
        sa.Column("artifact_size", sa.BigInteger, nullable=True),
        sa.Column("tags", json_type, nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sqlite_with_rowid=rowid,
    )


def _rebuild_models(*, rowid: bool) -> None:
    """Copy ``models`` into a table of the wanted kind and put it in its place.

    Dropping the old table cascades to ``model_tags`` (foreign keys stay on inside the migration's
    transaction), so the tag rows are rebuilt from ``models.tags`` afterwards."""
    _models_table("models_rebuilt", rowid=rowid)
    op.execute("INSERT INTO models_rebuilt SELECT * FROM models")
    op.drop_table("models")
    op.rename_table("models_rebuilt", "models")
    for index, (columns, unique) in _INDEXES.items():
        op.create_index(index, "models", columns, unique=unique)
    op.execute("DELETE FROM model_tags")
    op.execute(
        "INSERT INTO model_tags (model_id, key, value) "
        "SELECT m.id, j.key, j.value FROM models AS m, json_each(m.tags) AS j"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER IF EXISTS models_tags_insert")
    op.execute("DROP TRIGGER IF EXISTS models_tags_update")
    _rebuild_models(rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _rebuild_models(rowid=True)
    op.execute(
        "CREATE TRIGGER models_tags_insert AFTER INSERT ON models WHEN NEW.tags <> '{}' BEGIN "
        "INSERT INTO model_tags (model_id, key, value) SELECT NEW.id, j.key, j.value FROM json_each(NEW.tags) j; "
        "END"
    )
    op.execute(
        "CREATE TRIGGER models_tags_update AFTER UPDATE OF tags ON models WHEN NEW.tags <> OLD.tags BEGIN "
        "DELETE FROM model_tags WHERE model_id = NEW.id; "
        "INSERT INTO model_tags (model_id, key, value) SELECT NEW.id, j.key, j.value FROM json_each(NEW.tags) j; "
        "END"
    )
