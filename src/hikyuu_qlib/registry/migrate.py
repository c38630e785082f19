"""Apply the Alembic migrations on open, once, under a lock (concurrent openers wait, then see head)."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from hikyuu_qlib.domain.errors import RegistryNotFoundError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest revision in migrations/versions (a test checks it against Alembic's head). Knowing it
# lets an up-to-date database open without importing Alembic at all.
HEAD = "0005"


def _config() -> Config:
    from alembic.config import Config

    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def upgrade(conn: sa.Connection, *, create: bool = True, where: str = "the database") -> None:
    """Bring the schema to head inside the connection's (write) transaction. With ``create=False`` a
    database without the registry's tables is a :class:`RegistryNotFoundError` (nothing is created)."""
    if conn.dialect.name == "postgresql":
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar() or "public"
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"hq_registry:{schema}"})
    current = current_revision(conn)
    if current == HEAD:
        return
    if current is None and not create:
        raise RegistryNotFoundError(f"no registry in {where}: it holds no registry tables")
    from alembic import command

    log.info("migrating registry schema from %s to %s", current or "empty", head_revision())
    config = _config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
