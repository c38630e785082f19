"""What the async repository and the sync facade share: statements, cursor checks, page building."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from hikyuu_qlib.domain.errors import AmbiguousIdError, InvalidInputError, ModelNotFoundError
from hikyuu_qlib.domain.model import Model
from hikyuu_qlib.domain.queries import ModelFilter, ModelOrder, Page
from hikyuu_qlib.observability.operations import OperationObserver
from hikyuu_qlib.observability.statements import StatementSpans
from hikyuu_qlib.observability.telemetry import Telemetry
from hikyuu_qlib.registry import query as statements
from hikyuu_qlib.registry.checkpoint import WalCheckpointer
from hikyuu_qlib.registry.codec import with_version
from hikyuu_qlib.registry.cursor import CursorCodec
from hikyuu_qlib.registry.engine import Backend, RegistryOptions, describe, parse_url, sqlite_path, sqlite_uri
from hikyuu_qlib.registry.retry import RetryPolicy
from hikyuu_qlib.registry.tables import registry_meta

CURSOR_KEY_STATEMENT = sa.select(registry_meta.c.value).where(registry_meta.c.key == "cursor_key")
_ID_CHARS = frozenset("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


class RegistryCore:
    """Backend-specific statements built once, and the pure parts of each operation."""

    def __init__(
        self, url: str, options: RegistryOptions | None = None, telemetry: Telemetry | None = None
    ) -> None:
        backend, parsed = parse_url(url)
        self.url = url
        self.sqlite_path = sqlite_path(parsed) if backend == "sqlite" else None
        self.backend: Backend = backend
        self.options = options or RegistryOptions()
        # the database as messages name it (a PostgreSQL URL with its password masked)
        self.where = sqlite_path(parsed).as_posix() if backend == "sqlite" else describe(url)
        if backend == "postgresql" and self.options.schema:
            self.where += f" (schema {self.options.schema})"
        self.telemetry = telemetry or Telemetry.disabled()
        # times, counts and traces the operations; None when nothing is recorded
        self.observer = OperationObserver(self.telemetry, backend) if self.telemetry.active else None
        # spans of the statements run on driver connections; None with tracing off (plain drivers)
        self.statement_spans: StatementSpans | None = None
        if self.telemetry.tracing.enabled:
            self.statement_spans = StatementSpans(self.telemetry.tracing, backend, parsed)
        self.policy = RetryPolicy(
            attempts=self.options.retry_attempts,
            deadline=self.options.retry_deadline,
            where=self.where,
            on_retry=None if self.observer is None else self.observer.retried,
        )
        self.upsert_one = statements.upsert_one_statement(backend)
        self.upsert_many = statements.pg_upsert_many_sql() if backend == "postgresql" else None
        self.get_one = statements.get_statement()
        self.get_many = statements.get_many_statement()
        self.delete_many = statements.delete_many_statement()
        self._cursors: CursorCodec | None = None

    def checkpointer(self) -> WalCheckpointer | None:
        """SQLite: a started background WAL checkpointer for this database (the caller stops it)."""
        if self.sqlite_path is None:
            return None
        return WalCheckpointer(
            self.sqlite_path,
            uri=sqlite_uri(self.sqlite_path, create=False),
            busy_timeout_ms=self.options.busy_timeout_ms,
        ).start()

    def set_cursor_key(self, key: str | None) -> None:
        if not key:
            raise InvalidInputError("registry has no cursor key: the schema is incomplete")
        self._cursors = CursorCodec(key.encode())

    @property
    def cursors(self) -> CursorCodec:
        if self._cursors is None:
            raise InvalidInputError("the registry is not open: use it as a context manager or call open()")
        return self._cursors

    @staticmethod
    def check_limit(limit: int) -> int:
        if not isinstance(limit, int) or limit < 1 or limit > statements.MAX_LIMIT:
            raise InvalidInputError(f"invalid limit {limit!r}: expected 1 to {statements.MAX_LIMIT}")
        return limit

    def after(self, cursor: str | None, order: ModelOrder, flt: ModelFilter) -> list[Any] | None:
        return None if cursor is None else self.cursors.decode(cursor, order.value, flt.fingerprint())

    def page(
        self,
        rows: Sequence[Sequence[Any]],
        order: ModelOrder,
        flt: ModelFilter,
        limit: int,
        to_model: Callable[[Sequence[Any]], Model],
    ) -> Page[Model]:
        """Rows fetched with ``limit + 1``: the extra row only tells that there is a next page."""
        items = [to_model(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = self.cursors.encode(
                order.value, flt.fingerprint(), statements.row_keys(order, rows[limit - 1])
            )
        return Page(items, next_cursor)

    @staticmethod
    def with_versions(models: Sequence[Model], versions: Iterable[tuple[str, int]]) -> list[Model]:
        by_id = dict(versions)
        return [with_version(m, by_id[m.id]) for m in models]

    @staticmethod
    def saved(stored: Model | None, model: Model) -> bool:
        """Whether ``stored`` (read back after a commit in doubt) is ``model`` as it was written."""
        return stored is not None and stored == with_version(model, stored.version or 0)

    @staticmethod
    def check_ids(ids: Iterable[str]) -> list[str]:
        out = list(ids)
        for i in out:
            if not isinstance(i, str):
                raise InvalidInputError(f"invalid model id {i!r}")
        return out

    @staticmethod
    def normalise_prefix(prefix: str) -> str:
        text = prefix.strip().upper()
        if not text or not set(text) <= _ID_CHARS or len(text) > 26:
            raise ModelNotFoundError(f"no model with id {prefix!r}: ids are ULIDs such as 01J9ZQ5K…")
        return text

    @staticmethod
    def resolved(prefix: str, ids: Sequence[str]) -> str:
        if not ids:
            raise ModelNotFoundError(f"no model with id or id prefix {prefix!r}")
        if len(ids) > 1:
            raise AmbiguousIdError(
                f"id prefix {prefix!r} matches several models ({', '.join(ids)}, …): give more characters"
            )
        return ids[0]


def not_found(model_id: str) -> ModelNotFoundError:
    return ModelNotFoundError(f"no model with id {model_id!r}")
