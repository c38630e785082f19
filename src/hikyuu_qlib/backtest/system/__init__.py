"""Hikyuu-style trading system: one stock or a list, signal + money manager + stops + slippage + costs.

Example::

    system = TradingSystem(MACross(5, 20), FixedCount(1000), stop_loss=StopLoss(0.05))
    result = system.run(store, ["SH600000"], DateRange.of("2010-01-01", "2011-12-31"))
    result.trades, result.daily, result.trade_statistics()

The names below are loaded on first use: the components' configuration does not import the engine's
numba kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hikyuu_qlib.lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from hikyuu_qlib.backtest.system.config import (
        CostModel,
        ExprSignal,
        FixedCount,
        FixedPercent,
        FixedRisk,
        MACross,
        MoneyManager,
        ScoreThreshold,
        Signal,
        Slippage,
        StopLoss,
        TakeProfit,
        TradeSignals,
    )
    from hikyuu_qlib.backtest.system.engine import (
        POSITION_SCHEMA,
        TRADE_SCHEMA,
        SystemResult,
        TradingSystem,
    )
    from hikyuu_qlib.backtest.system.signals import add_signals

_CONFIG = ("CostModel", "ExprSignal", "FixedCount", "FixedPercent", "FixedRisk", "MACross", "MoneyManager",
           "ScoreThreshold", "Signal", "Slippage", "StopLoss", "TakeProfit", "TradeSignals")  # fmt: skip
_ENGINE = ("POSITION_SCHEMA", "TRADE_SCHEMA", "SystemResult", "TradingSystem")
_WHERE = {
    **dict.fromkeys(_CONFIG, "hikyuu_qlib.backtest.system.config"),
    **dict.fromkeys(_ENGINE, "hikyuu_qlib.backtest.system.engine"),
    "add_signals": "hikyuu_qlib.backtest.system.signals",
}
__all__ = [
    "POSITION_SCHEMA",
    "TRADE_SCHEMA",
    "CostModel",
    "ExprSignal",
    "FixedCount",
    "FixedPercent",
    "FixedRisk",
    "MACross",
    "MoneyManager",
    "ScoreThreshold",
    "Signal",
    "Slippage",
    "StopLoss",
    "SystemResult",
    "TakeProfit",
    "TradeSignals",
    "TradingSystem",
    "add_signals",
]
__getattr__ = _lazy_exports(globals(), _WHERE)
