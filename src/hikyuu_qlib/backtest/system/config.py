"""Components of a Hikyuu-style trading system, as frozen configuration values.

Each component mirrors one of Hikyuu's trade-system parts; the semantics are stated here because the
kernel (``kernel.py``) implements them on arrays:

* signals (``SG_*``): a buy and a sell flag per bar, evaluated on the bar's close;
* money managers (``MM_*``): how many shares a buy order takes, rounded down to the stock's lot (and
  to what the cash affords);
* stop loss (``ST_FixedPercent``): exit once a close is at or below ``entry × (1 − pct)``;
* take profit (the fixed-percent profit goal, ``PG_FixedPercent``): exit once a close is at or above
  ``entry × (1 + pct)``;
* slippage (``SL_FixedPercent``): buys fill at ``price × (1 + pct)``, sells at ``price × (1 − pct)``;
* costs (``TC_FixedA``): commission on the traded amount with a minimum, stamp tax on sells and an
  optional per-share transfer fee on Shanghai codes (with its own minimum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import polars as pl

from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.domain.numeric import EPS


def _check_fraction(name: str, value: float, *, upper: float = 1.0, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and math.isfinite(value)
    ok = ok and (value >= 0.0 if allow_zero else value > 0.0) and value < upper
    if not ok:
        lo = "0 <=" if allow_zero else "0 <"
        raise InvalidInputError(f"{name} must satisfy {lo} value < {upper}, got {value!r}")


# --- signals --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MACross:
    """Moving-average cross (Hikyuu's ``SG_Cross(MA(fast), MA(slow))``) on ``column``.

    Buy on the bar where the fast MA goes from strictly below the slow MA to strictly above it,
    sell on the opposite cross; no signal while either average is still warming up.
    """

    fast: int = 5
    slow: int = 20
    column: str = "close"

    def __post_init__(self) -> None:
        for name, n in (("fast", self.fast), ("slow", self.slow)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise InvalidInputError(f"MACross {name} window must be a positive integer, got {n!r}")
        if self.fast >= self.slow:
            raise InvalidInputError(
                f"MACross fast window must be shorter than the slow one, "
                f"got fast={self.fast} slow={self.slow}"
            )


@dataclass(frozen=True, slots=True)
class ScoreThreshold:
    """Buy when a prediction score is above ``buy_above``, sell when it is below ``sell_below``.

    ``predictions`` has columns ``datetime``, ``code`` (or ``instrument``) and ``column``; a score dated
    ``t`` is taken as known at bar ``t``'s close (Qlib's convention), so it trades at ``t + 1``.
    """

    predictions: pl.DataFrame = field(repr=False)
    buy_above: float
    sell_below: float
    column: str = "score"

    def __post_init__(self) -> None:
        if not math.isfinite(self.buy_above) or not math.isfinite(self.sell_below):
            raise InvalidInputError(
                f"score thresholds must be finite, got buy_above={self.buy_above!r}, "
                f"sell_below={self.sell_below!r}"
            )
        if self.sell_below > self.buy_above:
            raise InvalidInputError(
                f"sell_below ({self.sell_below}) must not exceed buy_above ({self.buy_above})"
            )
        cols = set(self.predictions.columns)
        missing = [c for c in ("datetime", self.column) if c not in cols]
        if "code" not in cols and "instrument" not in cols:
            missing.append("code")
        if missing:
            raise InvalidInputError(
                f"predictions frame lacks column(s) {', '.join(missing)} (has: {', '.join(sorted(cols))})"
            )


@dataclass(frozen=True, slots=True)
class TradeSignals:
    """BUY/SELL/HOLD signals (:data:`hikyuu_qlib.signals.SIGNAL_SCHEMA`, e.g. from
    :func:`hikyuu_qlib.signals.to_signals`): a code buys on a BUY dated ``t`` and sells on a SELL dated
    ``t`` (decided at ``t``'s close, like every signal); HOLD and dates without a row do nothing."""

    signals: pl.DataFrame = field(repr=False)

    def __post_init__(self) -> None:
        cols = set(self.signals.columns)
        missing = [c for c in ("datetime", "code", "signal") if c not in cols]
        if missing:
            raise InvalidInputError(
                f"signals frame lacks column(s) {', '.join(missing)} (has: {', '.join(sorted(cols))})"
            )
        known = {"BUY", "SELL", "HOLD"}
        bad = set(self.signals["signal"].cast(pl.String).str.to_uppercase().unique().to_list()) - known
        if bad:
            raise InvalidInputError(
                f"signals frame has signal value(s) {sorted(map(str, bad))}: expected BUY, SELL or HOLD"
            )


@dataclass(frozen=True, slots=True)
class ExprSignal:
    """Any two boolean polars expressions over the bars frame (``code, datetime, open … amount``).

    Rolling expressions must be computed per code (``.over("code")``); nulls count as false.
    """

    buy: pl.Expr
    sell: pl.Expr


Signal = MACross | ScoreThreshold | TradeSignals | ExprSignal


# --- money managers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FixedCount:
    """``MM_FixedCount``: buy ``n`` shares (rounded down to the lot) each time."""

    n: int

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise InvalidInputError(f"FixedCount needs a positive number of shares, got {self.n!r}")


@dataclass(frozen=True, slots=True)
class FixedPercent:
    """``MM_FixedPercent``: risk the fraction ``p`` of the cash on hand at the fill, rounded down to whole
    lots: shares = cash × p / risk a share, the risk being the distance to the stop price
    (entry × stop-loss pct) with a stop loss, else the whole price (then it invests ``p`` of the cash)."""

    p: float

    def __post_init__(self) -> None:
        _check_fraction("FixedPercent p", self.p, upper=1.0 + EPS)


@dataclass(frozen=True, slots=True)
class FixedRisk:
    """``MM_FixedRisk``: size so that the loss from the entry to the stop price is ``risk`` yuan.

    Needs a stop loss; shares = risk / (entry − stop), rounded down to the lot.
    """

    risk: float

    def __post_init__(self) -> None:
        if not (isinstance(self.risk, int | float) and math.isfinite(self.risk) and self.risk > 0):
            raise InvalidInputError(f"FixedRisk needs a positive risk in yuan, got {self.risk!r}")


MoneyManager = FixedCount | FixedPercent | FixedRisk


# --- stops, slippage, costs -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StopLoss:
    """``ST_FixedPercent``: stop price ``entry × (1 − pct)``, checked against each close."""

    pct: float

    def __post_init__(self) -> None:
        _check_fraction("StopLoss pct", self.pct)


@dataclass(frozen=True, slots=True)
class TakeProfit:
    """Fixed-percent profit goal: exit once a close reaches ``entry × (1 + pct)``."""

    pct: float

    def __post_init__(self) -> None:
        _check_fraction("TakeProfit pct", self.pct, upper=100.0)


@dataclass(frozen=True, slots=True)
class Slippage:
    """``SL_FixedPercent``: buys pay ``pct`` more, sells receive ``pct`` less than the bar price."""

    pct: float

    def __post_init__(self) -> None:
        _check_fraction("Slippage pct", self.pct, upper=0.5, allow_zero=True)


@dataclass(frozen=True, slots=True)
class CostModel:
    """``TC_FixedA``-like costs, in yuan per order.

    commission = max(amount × ``commission``, ``min_commission``) on both sides; stamp tax
    amount × ``stamp_tax`` on sells only; on Shanghai codes, when ``transfer_fee`` > 0, a transfer
    fee max(shares × ``transfer_fee``, ``min_transfer_fee``) on both sides.
    """

    commission: float = 0.0018
    min_commission: float = 5.0
    stamp_tax: float = 0.001
    transfer_fee: float = 0.0
    min_transfer_fee: float = 1.0

    def __post_init__(self) -> None:
        for name in ("commission", "stamp_tax", "transfer_fee"):
            _check_fraction(f"CostModel {name}", getattr(self, name), upper=0.1, allow_zero=True)
        for name in ("min_commission", "min_transfer_fee"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise InvalidInputError(f"CostModel {name} must be a non-negative number, got {v!r}")

    @classmethod
    def fixed_a(cls) -> CostModel:
        """Hikyuu's ``TC_FixedA`` defaults, including the Shanghai transfer fee of 1 yuan per 1000 shares."""
        return cls(transfer_fee=0.001, min_transfer_fee=1.0)

    @classmethod
    def zero(cls) -> CostModel:
        """No costs at all."""
        return cls(commission=0.0, min_commission=0.0, stamp_tax=0.0)
