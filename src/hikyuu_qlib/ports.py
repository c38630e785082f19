"""Ports: the protocols that adapters implement and use cases depend on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import polars as pl

from hikyuu_qlib.domain import Adjust, DateRange, KType, Market, StockCode, StockType


class Progress(Protocol):
    """Progress callback for long work: ``done`` of ``total`` items, the last one named ``item``."""

    def __call__(self, done: int, total: int, item: str) -> None: ...


@runtime_checkable
class MarketData(Protocol):
    """A market data store: stock lists, calendars, universes and bars as columnar frames.

    Implementations are blocking (file I/O); the async API runs them off the event loop.
    ``read_bars`` reads one code and raises a specific :class:`~hikyuu_qlib.domain.HQError`
    on failure; it never returns empty data for a code it could not read.
    """

    @property
    def source(self) -> str:
        """The source spec this store was opened from (``hikyuu:PATH`` …)."""
        ...

    def data_version(self) -> str:
        """A token that changes whenever the underlying data changes (for cache keys)."""
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
        """The stock list (see ``STOCK_SCHEMA``), filtered by market, type and validity."""
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
