"""hikyuu-qlib: one research platform over Hikyuu and Qlib market data stores.

Entry points::

    from hikyuu_qlib import open_market
    with open_market("hikyuu:/data/stock") as md:
        bars = md.bars(["SH600000", "SZ000001"], start="2010-01-01", adjust="forward")

    from hikyuu_qlib import SignalRule, to_signals
    signals = to_signals(predictions, SignalRule.topk(10))  # BUY / SELL / HOLD with a strength
"""

from hikyuu_qlib.app import open_market, open_market_async, open_store
from hikyuu_qlib.domain import (
    Adjust,
    DateRange,
    HQError,
    KType,
    LoadErrors,
    Market,
    StockCode,
    StockType,
)
from hikyuu_qlib.marketdata import AsyncMarketDataClient, LoadResult, MarketDataClient
from hikyuu_qlib.signals import SignalMethod, SignalRule, to_signals

__version__ = "0.1.0"

__all__ = [
    "Adjust",
    "AsyncMarketDataClient",
    "DateRange",
    "HQError",
    "KType",
    "LoadErrors",
    "LoadResult",
    "Market",
    "MarketDataClient",
    "SignalMethod",
    "SignalRule",
    "StockCode",
    "StockType",
    "__version__",
    "open_market",
    "open_market_async",
    "open_store",
    "to_signals",
]
