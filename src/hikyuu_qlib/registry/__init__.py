"""The model registry: records of trained models in SQLite or PostgreSQL, and their artifact files.

* :class:`AsyncModelRepository` – the async repository (SQLAlchemy async Core over aiosqlite/asyncpg);
* :class:`ModelRegistry` – the sync facade (sqlite3/psycopg), same operations, blocking;
* :class:`LocalArtifactStore` – content-addressed model files, verified on read;
* :class:`ModelFilter`, :class:`ModelOrder`, :class:`Page` – the query vocabulary.

Build them with :func:`hikyuu_qlib.app.open_registry` and :func:`hikyuu_qlib.app.open_artifacts`.
Importing this package opens nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hikyuu_qlib.registry.artifacts import LocalArtifactStore
    from hikyuu_qlib.registry.engine import RegistryOptions
    from hikyuu_qlib.registry.query import ModelFilter, ModelOrder, Page
    from hikyuu_qlib.registry.repository import AsyncModelRepository
    from hikyuu_qlib.registry.sync import ModelRegistry

# Imported on first use, so that the sync path (CLI) does not load the asyncio stack and vice versa.
_WHERE = {
    "AsyncModelRepository": "repository",
    "LocalArtifactStore": "artifacts",
    "ModelFilter": "query",
    "ModelOrder": "query",
    "ModelRegistry": "sync",
    "Page": "query",
    "RegistryOptions": "engine",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"hikyuu_qlib.registry.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'hikyuu_qlib.registry' has no attribute {name!r}")


__all__ = [
    "AsyncModelRepository",
    "LocalArtifactStore",
    "ModelFilter",
    "ModelOrder",
    "ModelRegistry",
    "Page",
    "RegistryOptions",
]
