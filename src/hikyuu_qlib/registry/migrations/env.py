"""Alembic environment: runs on the connection the registry hands over (``config.attributes``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

connection: Connection | None = context.config.attributes.get("connection")

if connection is None:  # run by hand: `alembic -x url=sqlite:///path upgrade head`
    url = context.get_x_argument(as_dictionary=True)["url"]
    with create_engine(url).begin() as conn:
        context.configure(connection=conn, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
