"""The model registry: records of trained models in SQLite or PostgreSQL, and their artifact files.

* :class:`AsyncModelRepository` – the async repository (SQLAlchemy async Core over aiosqlite/asyncpg);
* :class:`ModelRegistry` – the sync facade (sqlite3/psycopg), same operations, blocking;
* :class:`LocalArtifactStore` – content-addressed model files, verified on read;
* :class:`ModelFilter`, :class:`ModelOrder`, :class:`Page` – the query vocabulary.

Build them with :func:`hikyuu_qlib.app.open_registry` and :func:`hikyuu_qlib.app.open_artifacts`.
Importing this package opens nothing.
"""

from hikyuu_qlib.registry.artifacts import LocalArtifactStore
from hikyuu_qlib.registry.engine import RegistryOptions
from hikyuu_qlib.registry.query import ModelFilter, ModelOrder, Page
from hikyuu_qlib.registry.repository import AsyncModelRepository
from hikyuu_qlib.registry.sync import ModelRegistry

__all__ = [
    "AsyncModelRepository",
    "LocalArtifactStore",
    "ModelFilter",
    "ModelOrder",
    "ModelRegistry",
    "Page",
    "RegistryOptions",
]
