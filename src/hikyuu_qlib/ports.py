"""Ports: the protocols that adapters implement and use cases depend on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import polars as pl

from hikyuu_qlib.domain import Adjust, DateRange, HQError, KType, Market, StockCode, StockType
from hikyuu_qlib.domain.model import ArtifactRef, Model, ModelStatus
from hikyuu_qlib.domain.queries import ModelFilter, ModelOrder, Page


class Progress(Protocol):
    """Progress callback for long work: ``done`` of ``total`` items, the last one named ``item``."""

    def __call__(self, done: int, total: int, item: str) -> None: ...


@runtime_checkable
class BatchBarReader(Protocol):
    """Optional capability of a store: read many codes' bars in one columnar pass."""

    def read_many(
        self,
        codes: Sequence[StockCode],
        *,
        ktype: KType = KType.DAY,
        adjust: Adjust = Adjust.NONE,
        dates: DateRange | None = None,
    ) -> tuple[pl.DataFrame, dict[str, HQError]]:
        """The bars of the codes that loaded (sorted by code, datetime) and each failing code's error."""
        ...


@runtime_checkable
class RiskFreeSource(Protocol):
    """Optional capability of a store: the risk-free rate that Sharpe ratios subtract."""

    def risk_free(self) -> pl.DataFrame | None:
        """``datetime, rate`` (an annual rate as a fraction, one row per quote, ascending), or ``None``
        when the store holds no rates."""
        ...


@runtime_checkable
class FeatureSource(Protocol):
    """Raw fields of a market in Qlib's model, for research: factors, labels and the portfolio backtest.

    ``features`` returns ``code, datetime, <field>…`` with every field ``Float32`` and named without
    ``$`` (``$close`` and ``close`` ask for the same field), sorted by code then datetime. Rows follow Qlib:
    each code has one row per trading day within ``dates`` from its first to its last day of data in the
    source (NaN where it did not trade); a code without any data is absent; a code that fails to load
    fails the call with :class:`~hikyuu_qlib.domain.LoadErrors` naming every failing code. Prices are
    adjusted as ``$price = traded price × $factor`` and ``$volume = traded shares / $factor``; ``$change``
    is the close-to-close change as a fraction (``0.0123`` for +1.23 %), whatever unit the data keep it in.

    ``fields(codes)`` is what :meth:`features` can serve, as data: the names (``open``, ``high``, ``low``,
    ``close``, ``volume``, ``factor``, ``change``, ``amount``, ``vwap`` …) that every one of ``codes`` with
    data serves (default: every instrument of the source); empty when none of them has data. Callers
    ask for an optional field (``vwap``, ``change``) only when it is listed there.

    ``members(universe, dates)`` gives membership spans (``MEMBERSHIP_SCHEMA``); every source serves the
    universe ``all`` (the listing spans that Qlib's exchange masks prices with). ``source`` is the
    canonical spec of the market data behind it (what the composition root opens again) and
    ``data_version()`` a token that changes whenever the served values may change (for cache keys).
    """

    @property
    def source(self) -> str: ...

    def data_version(self) -> str: ...

    def calendar(self, *, dates: DateRange | None = None) -> pl.Series:
        """Trading days, ascending, as a ``Datetime(ms)`` series."""
        ...

    def members(self, universe: str, dates: DateRange | None = None) -> pl.DataFrame: ...

    def fields(self, codes: Sequence[str] | None = None) -> frozenset[str]: ...

    def features(
        self, codes: Sequence[str], fields: Sequence[str], dates: DateRange | None = None, /
    ) -> pl.DataFrame: ...


@runtime_checkable
class MarketData(Protocol):
    """A market data store: stock lists, calendars, universes and bars as columnar frames.

    Implementations are blocking (file I/O); the async API runs them off the event loop.
    ``read_bars`` reads one code and raises a specific :class:`~hikyuu_qlib.domain.HQError`
    on failure; it never returns empty data for a code it could not read. A code the store lists but
    holds no bars for raises :class:`~hikyuu_qlib.domain.NoBarsError` ("without bars", not a failure;
    ``has_data`` is false for it in :meth:`stocks`), a code it does not know at all
    :class:`~hikyuu_qlib.domain.UnknownCodeError`.
    """

    @property
    def source(self) -> str:
        """The canonical source spec of this store (``hikyuu:/ABSOLUTE/PATH`` …, symlinks resolved)."""
        ...

    def data_version(self) -> str:
        """A token that changes whenever the underlying data changes (for cache keys); the same for every
        spelling of the store's path."""
        ...

    def markets(self) -> list[Market]: ...

    def ktypes(self) -> frozenset[KType]:
        """The ktypes this store can serve."""
        ...

    def stocks(
        self,
        *,
        market: Market | None = None,
        types: Sequence[StockType] | None = None,
        valid: bool | None = True,
    ) -> pl.DataFrame:
        """The stock list (see ``STOCK_SCHEMA``; ``has_data`` says which codes have bars), filtered by
        market, type and validity."""
        ...

    def calendar(self, *, ktype: KType = KType.DAY, dates: DateRange | None = None) -> pl.Series:
        """Trading datetimes, ascending, as a ``Datetime(ms)`` series."""
        ...

    def members(self, universe: str, dates: DateRange | None = None) -> pl.DataFrame:
        """Membership spans of a universe (see ``MEMBERSHIP_SCHEMA``) that overlap ``dates``."""
        ...

    def read_bars(
        self,
        code: StockCode,
        *,
        ktype: KType = KType.DAY,
        adjust: Adjust = Adjust.NONE,
        dates: DateRange | None = None,
    ) -> pl.DataFrame:
        """Bars of one code (see ``BAR_SCHEMA``), sorted by datetime."""
        ...

    def weights(self, code: StockCode) -> pl.DataFrame:
        """Split and dividend events of one code (see ``WEIGHT_SCHEMA``); empty when the store has none."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ModelRecords(Protocol):
    """The model records the use cases keep: save, read, move through the lifecycle, find.

    Blocking; implemented by the registry's sync facade (``hikyuu_qlib.registry.ModelRegistry``, over
    SQLite or PostgreSQL). ``save`` is one upsert that assigns the version of a new record; ``get`` and
    ``resolve`` raise :class:`~hikyuu_qlib.domain.errors.ModelNotFoundError` for an unknown id;
    ``transition`` follows the lifecycle (:class:`~hikyuu_qlib.domain.errors.IllegalTransitionError`
    otherwise); ``find`` returns one keyset page.
    """

    def save(self, model: Model) -> Model: ...

    def get(self, model_id: str) -> Model: ...

    def transition(self, model_id: str, target: ModelStatus | str) -> Model: ...

    def find(
        self,
        flt: ModelFilter | None = None,
        *,
        order: ModelOrder | str = ...,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Model]: ...

    def resolve(self, prefix: str) -> str:
        """The whole id of the one model whose id starts with ``prefix``."""
        ...


@runtime_checkable
class ModelFiles(Protocol):
    """Where a model's files live (the booster, the processors' state …), content-addressed: each put
    returns the :class:`~hikyuu_qlib.domain.model.ArtifactRef` that a record keeps, and each get checks
    the bytes against it (:class:`~hikyuu_qlib.domain.errors.ArtifactIntegrityError` otherwise).

    Implemented by ``hikyuu_qlib.registry.LocalArtifactStore``.
    """

    def put_bytes(self, data: bytes) -> ArtifactRef: ...

    def get_bytes(self, ref: ArtifactRef) -> bytes: ...

    def save_lightgbm(self, booster: Any) -> ArtifactRef:
        """Store a LightGBM booster in its text format."""
        ...

    def load_lightgbm(self, ref: ArtifactRef) -> Any:
        """The LightGBM booster stored under ``ref``."""
        ...
