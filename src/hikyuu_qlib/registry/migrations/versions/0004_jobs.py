"""Jobs of the HTTP service: one row per job (kind, status, body, progress, result, error, times).

The service's workers insert queued jobs; the runner of ``hq serve`` claims them, runs each in a worker
process and records progress and the outcome. ``runner`` and ``heartbeat_at`` let a restarted server
mark the jobs of a dead runner failed instead of leaving them running.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(26), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("body", json_type, nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("stage", sa.Text, nullable=True),
        sa.Column("result", json_type, nullable=True),
        sa.Column("error", json_type, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("runner", sa.String(200), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=True),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.Column("heartbeat_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at", "id"])


def downgrade() -> None:
    op.drop_table("jobs")
