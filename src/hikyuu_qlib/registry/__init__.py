"""The model registry: records of trained models in SQLite or PostgreSQL, and their artifact files.

* :class:`AsyncModelRepository` – the async repository (SQLAlchemy async Core over aiosqlite/asyncpg);
* :class:`ModelRegistry` – the sync facade (sqlite3/psycopg), same operations, blocking;
* :class:`LocalArtifactStore` – content-addressed model files, verified on read;
* :class:`ModelFilter`, :class:`ModelOrder`, :class:`Page` – the query vocabulary (defined in
  :mod:`hikyuu_qlib.domain.queries`, re-exported here).

Build them with :func:`hikyuu_qlib.app.open_registry` and :func:`hikyuu_qlib.app.open_artifacts`.
Importing this package opens nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hikyuu_qlib.lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from hikyuu_qlib.domain.queries import ModelFilter, ModelOrder, Page
    from hikyuu_qlib.registry.artifacts import LocalArtifactStore
    from hikyuu_qlib.registry.engine import RegistryOptions
    from hikyuu_qlib.registry.repository import AsyncModelRepository
    from hikyuu_qlib.registry.sync import ModelRegistry

# Imported on first use, so that the sync path (CLI) does not load the asyncio stack and vice versa.
_WHERE = {
    "AsyncModelRepository": "hikyuu_qlib.registry.repository",
    "LocalArtifactStore": "hikyuu_qlib.registry.artifacts",
    "ModelFilter": "hikyuu_qlib.domain.queries",
    "ModelOrder": "hikyuu_qlib.domain.queries",
    "ModelRegistry": "hikyuu_qlib.registry.sync",
    "Page": "hikyuu_qlib.domain.queries",
    "RegistryOptions": "hikyuu_qlib.registry.engine",
}

__getattr__ = _lazy_exports(globals(), _WHERE)


__all__ = [
    "AsyncModelRepository",
    "LocalArtifactStore",
    "ModelFilter",
    "ModelOrder",
    "ModelRegistry",
    "Page",
    "RegistryOptions",
]
