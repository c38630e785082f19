"""The registry schema as SQLAlchemy Core tables (the migrations create it; queries use it).

``models`` holds one row per model. JSON fields are ``JSON`` on SQLite and ``JSONB`` on PostgreSQL;
times are integer microseconds since the Unix epoch (UTC), which sort and compare exactly on both backends.
A model's artifacts are one JSON object by role (``{"model": {"uri": …, "sha256": …, "size": …}, …}``),
written with the row: no statement of their own.

Tag filters use an index on both backends: a GIN index on ``tags`` (PostgreSQL, ``@>``), and on SQLite
the ``model_tags`` side table, which the repository rewrites with each save in the same transaction
(see :mod:`hikyuu_qlib.registry.writes`). On SQLite ``models`` is a WITHOUT ROWID table clustered on ``id``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True, comment="ULID"),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False, comment="1, 2, … per name"),
    sa.Column("model_type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("hyperparameters", JSONType, nullable=False),
    sa.Column("feature_set", sa.String(200), nullable=False),
    sa.Column("universe", sa.String(200), nullable=False),
    sa.Column("segments", JSONType, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("metrics", JSONType, nullable=False),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False, comment="µs since epoch, UTC"),
    sa.Column("updated_at", sa.BigInteger, nullable=False, comment="µs since epoch, UTC"),
    # last: where migration 0003 added it (a PostgreSQL ALTER TABLE appends), so rows have one column order
    sa.Column("artifacts", JSONType, nullable=False, comment="role -> {uri, sha256, size}"),
    sa.Index("uq_models_name_version", "name", "version", unique=True),
    sa.Index("ix_models_created", "created_at", "id"),
    sa.Index("ix_models_status_created", "status", "created_at", "id"),
    sa.Index("ix_models_type_created", "model_type", "created_at", "id"),
)

# SQLite only: a model's tags as rows, written with the model (registry.writes).
model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column("model_id", sa.String(26), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("model_id", "key"),
    sa.Index("ix_model_tags_key_value", "key", "value", "model_id"),
)

# PostgreSQL only: the last version handed out per name (see query.upsert_one_statement).
model_names = sa.Table(
    "model_names",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("last_version", sa.Integer, nullable=False),
)

# One row per registry: its id and the secret that signs page cursors.
registry_meta = sa.Table(
    "registry_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Jobs of the HTTP service (migration 0004): a queue that survives restarts, read by every worker.
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True, comment="ULID"),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("body", JSONType, nullable=False),
    sa.Column("progress", sa.Float, nullable=False),
    sa.Column("stage", sa.Text, nullable=True),
    sa.Column("result", JSONType, nullable=True),
    sa.Column("error", JSONType, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("runner", sa.String(200), nullable=True, comment="host:pid of the runner that claimed it"),
    sa.Column("created_at", sa.BigInteger, nullable=False, comment="µs since epoch, UTC"),
    sa.Column("started_at", sa.BigInteger, nullable=True),
    sa.Column("finished_at", sa.BigInteger, nullable=True),
    sa.Column("heartbeat_at", sa.BigInteger, nullable=True, comment="the runner's last sign of life"),
    # migration 0005: the trace context of the request that queued the job (W3C traceparent/tracestate)
    sa.Column("trace_context", JSONType, nullable=True),
    sa.Index("ix_jobs_created", "created_at", "id"),
    sa.Index("ix_jobs_status_created", "status", "created_at", "id"),
)

COLUMNS: tuple[str, ...] = tuple(c.name for c in models.columns)
# Fields a re-save may change; id, name, version and created_at are fixed at first save.
UPDATABLE: tuple[str, ...] = tuple(c for c in COLUMNS if c not in {"id", "name", "version", "created_at"})
