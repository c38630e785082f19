"""Ports: the protocols that adapters implement and use cases depend on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import IO, Any, Protocol, TypeVar, runtime_checkable

import polars as pl

from hikyuu_qlib.domain import Adjust, DateRange, HQError, KType, Market, StockCode, StockType
from hikyuu_qlib.domain.cache import CacheCounters, CacheKey, Tier, TierUsage
from hikyuu_qlib.domain.model import ArtifactRef, Model, ModelStatus
from hikyuu_qlib.domain.queries import ModelFilter, ModelOrder, Page

T = TypeVar("T")


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
class TickSource(Protocol):
    """Optional capability of a store: intraday time-line (分时) and tick (分笔) tables, as Hikyuu keeps them.

    ``timeline`` gives ``code, datetime, price, volume`` (one row a minute), ``trans`` adds ``direction``
    (``buy``, ``sell``, ``auction`` or ``unknown``); both sorted by datetime, prices in yuan, volume in
    the unit of the store's day bars of that code.
    """

    def timeline(self, code: StockCode, *, dates: DateRange | None = None) -> pl.DataFrame: ...

    def trans(self, code: StockCode, *, dates: DateRange | None = None) -> pl.DataFrame: ...


@runtime_checkable
class RiskFreeSource(Protocol):
    """Optional capability of a store: the risk-free rate that Sharpe ratios subtract."""

    def risk_free(self) -> pl.DataFrame | None:
        """``datetime, rate`` (an annual rate as a fraction, one row per quote, ascending), or ``None``
        when the store holds no rates."""
        ...


@runtime_checkable
class DataSpans(Protocol):
    """Optional capability of a feature source: which codes have data, and where it knows them, the first
    and last day of each code's data (what bounds the rows :meth:`FeatureSource.features` gives it)."""

    def data_spans(self) -> pl.DataFrame | None:
        """``code, start, end`` (``MEMBERSHIP_SCHEMA``): one row per code with data; ``start`` and ``end``
        its first and last day with data, null where the source does not know them cheaply. ``None`` when
        the source cannot tell (a wrapper over a source without the capability)."""
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


class Versioned(Protocol):
    """Anything with a source identity and a data version (a store, a feature source)."""

    @property
    def source(self) -> str: ...

    def data_version(self) -> str: ...


class ValueCodec(Protocol[T]):
    """How one kind of value is kept in the cache's tiers.

    ``name`` (at most 8 ASCII characters) and ``schema`` go into every stored value's header; a value
    stored under another name or schema is a miss. ``kind`` is ``arrow`` (an Arrow IPC stream in Redis, an
    Arrow IPC file on disk), ``json`` or ``memory``. ``storable`` is False for values that live in memory
    only (loaded boosters). ``write`` writes the payload of ``value`` for a tier (Redis: an Arrow IPC
    stream or JSON; disk: an Arrow IPC file or JSON); ``read`` parses a payload (``ValueError`` when it
    cannot); ``size`` is the bytes ``value`` holds in memory (the L1 bound counts them).
    """

    @property
    def name(self) -> str: ...

    @property
    def schema(self) -> int: ...

    @property
    def storable(self) -> bool: ...

    @property
    def kind(self) -> str: ...

    def size(self, value: T) -> int: ...

    def write(self, value: T, out: IO[bytes], tier: Tier) -> None: ...

    def read(self, payload: memoryview, tier: Tier) -> T: ...


@runtime_checkable
class Cache(Protocol):
    """A tiered cache: memory (L1), Redis (L2, optional), disk (L3).

    ``get_or_compute`` returns the value of ``key`` from the nearest tier that holds it (copying it into
    the nearer tiers that the key allows), else runs ``compute`` once for all concurrent callers of the
    same key (threads and tasks of this process; other processes through a Redis lock) and stores its
    value, unless ``keep(value)`` is False. A tier that fails (Redis down) is skipped, never an error.
    ``generation(scope)`` is a token that ``bump(scope)`` changes in every process sharing the cache
    (None when it cannot be known: then nothing of that scope may be served from the cache).
    """

    def get(self, key: CacheKey, codec: ValueCodec[T]) -> T | None: ...

    def put(self, key: CacheKey, value: T, codec: ValueCodec[T]) -> None: ...

    def get_or_compute(
        self,
        key: CacheKey,
        compute: Callable[[], T],
        codec: ValueCodec[T],
        *,
        keep: Callable[[T], bool] | None = None,
    ) -> T: ...

    async def aget_or_compute(
        self,
        key: CacheKey,
        compute: Callable[[], Awaitable[T]],
        codec: ValueCodec[T],
        *,
        keep: Callable[[T], bool] | None = None,
    ) -> T: ...

    def delete(self, key: CacheKey) -> None: ...

    def data_version(self, source: Versioned) -> str:
        """``source.data_version()``, asked again at most once per the cache's version interval."""
        ...

    def fresh_version(self, source: Versioned) -> str | None:
        """The remembered data version of ``source`` while it is fresh, else None (never blocks)."""
        ...

    def generation(self, scope: str) -> str | None: ...

    async def ageneration(self, scope: str) -> str | None: ...

    def bump(self, scope: str) -> None: ...

    async def abump(self, scope: str) -> None: ...

    def counters(self) -> CacheCounters: ...

    def usage(self) -> list[TierUsage]: ...

    def clear(self, tiers: Collection[Tier] | None = None) -> dict[Tier, int]:
        """Delete every value of the given tiers (default: all); returns how many each held."""
        ...

    def close(self) -> None: ...
