"""Alembic migrations of the registry schema, applied by :func:`hikyuu_qlib.registry.migrate.upgrade`."""
