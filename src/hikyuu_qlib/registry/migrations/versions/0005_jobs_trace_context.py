"""A job's trace context: the W3C ``traceparent``/``tracestate`` of the request that queued it.

``POST /v1/jobs`` stores the request's trace context with the job (``NULL`` when tracing is off), and the
job's worker process continues that trace, so the job's spans are children of the request's span.
Nullable and added in place on both backends (no table rebuild).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    op.add_column("jobs", sa.Column("trace_context", json_type, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("trace_context")
