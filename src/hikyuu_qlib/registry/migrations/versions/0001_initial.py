"""Initial registry schema: models, tag index, registry meta.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "models",
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
    )
    op.create_index("uq_models_name_version", "models", ["name", "version"], unique=True)
    op.create_index("ix_models_created", "models", ["created_at", "id"])
    op.create_index("ix_models_status_created", "models", ["status", "created_at", "id"])
    op.create_index("ix_models_type_created", "models", ["model_type", "created_at", "id"])
    op.create_table(
        "registry_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    meta = sa.table("registry_meta", sa.column("key"), sa.column("value"))
    op.bulk_insert(meta, [{"key": "cursor_key", "value": secrets.token_hex(32)}])
    if sqlite:
        op.create_table(
            "model_tags",
            sa.Column(
                "model_id", sa.String(26), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False
            ),
            sa.Column("key", sa.Text, nullable=False),
            sa.Column("value", sa.Text, nullable=False),
            sa.PrimaryKeyConstraint("model_id", "key"),
            sqlite_with_rowid=False,  # clustered on (model_id, key): one b-tree less per tag written
        )
        op.create_index("ix_model_tags_key_value", "model_tags", ["key", "value", "model_id"])
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
    else:
        # the last version handed out per name: its row lock serialises concurrent first saves of a name
        op.create_table(
            "model_names",
            sa.Column("name", sa.String(200), primary_key=True),
            sa.Column("last_version", sa.Integer, nullable=False),
        )
        op.create_index(
            "ix_models_tags",
            "models",
            ["tags"],
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_table("model_tags")
    else:
        op.drop_table("model_names")
    op.drop_table("registry_meta")
    op.drop_table("models")
