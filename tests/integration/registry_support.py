"""Shared fixtures of the registry tests: a real SQLite file, and a private schema on the real PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from ulid import ULID

from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.registry.engine import RegistryOptions


@dataclass(frozen=True)
class Target:
    """Where a test's registry lives."""

    backend: str
    url: str
    options: RegistryOptions
    pg_url: str | None = None

    def with_options(self, **changes: object) -> Target:
        import dataclasses

        return dataclasses.replace(self, options=dataclasses.replace(self.options, **changes))


@contextlib.contextmanager
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh schema, dropped afterwards (parallel and repeated runs never collide)."""
    schema = f"hq_test_{str(ULID()).lower()}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def make_target(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("registry") / "registry.db"
        yield Target("sqlite", f"sqlite:///{path}", RegistryOptions(pool_size=5, max_overflow=10))
        return
    pg_url = request.getfixturevalue("pg_url")
    with pg_schema(pg_url) as schema:
        app = f"hq_test_{schema[-10:]}"
        yield Target("postgresql", pg_url, RegistryOptions(schema=schema, application_name=app), pg_url)


def sample(name: str = "alpha-lgb", i: int = 0, **overrides: object) -> Model:
    values: dict[str, object] = {
        "hyperparameters": {"learning_rate": 0.05, "num_leaves": 31 + i},
        "feature_set": "alpha158",
        "universe": "csi300",
        "segments": {
            "train": ["2010-01-01", "2014-12-31"],
            "valid": ["2015-01-01", "2015-12-31"],
            "test": ["2016-01-01", "2017-12-31"],
        },
        "label": "Ref($close, -2) / Ref($close, -1) - 1",
        "metrics": {"ic": 0.04, "rank_ic": 0.05, "backtest": {"annual_return": 0.12}},
        "tags": {"owner": "tests", "batch": str(i % 3)},
    }
    values.update(overrides)
    model_type = str(values.pop("model_type", "lightgbm"))
    return Model.new(name, model_type, **values)  # type: ignore[arg-type]
