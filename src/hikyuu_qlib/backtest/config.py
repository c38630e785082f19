"""The configuration of a TopkDropout portfolio backtest (strategy, exchange rules, costs, account)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from hikyuu_qlib.backtest.rebalance import Rebalance, check_rebalance
from hikyuu_qlib.domain.errors import InvalidInputError

DealPrice = Literal["close", "open"]

#: The fields that describe the TopkDropout strategy (a workflow file's ``strategy`` section); the others
#: are the market's rules, the costs and the account (its ``backtest`` section).
STRATEGY_FIELDS = ("topk", "n_drop", "risk_degree", "hold_thresh", "only_tradable", "rebalance")


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Parameters of :func:`~hikyuu_qlib.backtest.engine.run_topk_backtest`: the one backtest
    configuration that the workflow file (its ``strategy`` and ``backtest`` sections), ``hq backtest run``
    and the library all build, with its defaults and rules stated here only.

    Defaults are those of pyqlib's ``backtest_daily`` with ``TopkDropoutStrategy`` on the cn region, and
    topk 50 / n_drop 5 as in Qlib's benchmark workflows. Unknown keys are refused when it is validated
    from a document (the workflow file).

    * ``topk`` stocks are held; each rebalance day the ``n_drop`` worst held ones (by the previous
      day's score) are replaced, ``hold_thresh`` is the minimum number of days held before a sell.
    * ``rebalance``: the days the strategy trades — ``day`` (every day, Qlib's), ``week`` or ``month``
      (the first trading day of each), or a number N (every N trading days); the holdings are carried
      between rebalance days (:mod:`~hikyuu_qlib.backtest.rebalance`).
    * ``risk_degree`` of the cash left after the day's sells is split equally over the day's buys.
    * ``only_tradable`` lets the strategy skip untradable stocks when choosing; ``forbid_all_trade_at_limit``
      blocks any trade of a stock at either limit (Qlib's default), else only buys at limit up and sells at
      limit down are blocked.
    * ``limit_threshold``: a stock is at limit up when ``$change >= limit_threshold`` and at limit down when
      ``$change <= -limit_threshold``, both fractions (0.095 is 9.5 %, on every store: a store's percent
      ``$change`` is converted); ``None`` disables limits. When the store has no ``$change`` the
      per-board limits of :mod:`~hikyuu_qlib.backtest.rules` apply instead.
    * Costs: ``max(value * open_cost, min_cost)`` on buys, ``max(value * close_cost, min_cost)
      + value * stamp_tax`` on sells (``stamp_tax`` is an extension; Qlib has none, default 0).
    * ``zero_volume_suspended``: also treat days with zero ``$volume`` as suspended (an extension: Qlib
      only knows NaN closes, but stores that carry the close through suspensions have none).
    * ``trade_unit`` is in original (unadjusted) shares, applied through ``$factor``; ``None`` trades
      fractional amounts.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    topk: int = 50
    n_drop: int = 5
    risk_degree: float = 0.95
    hold_thresh: int = 1
    only_tradable: bool = False
    rebalance: Rebalance = "day"
    forbid_all_trade_at_limit: bool = True
    deal_price: DealPrice = "close"
    open_cost: float = 0.0005
    close_cost: float = 0.0015
    min_cost: float = 5.0
    stamp_tax: float = 0.0
    limit_threshold: float | None = 0.095
    trade_unit: int | None = 100
    zero_volume_suspended: bool = False
    account: float = 1e8
    benchmark: str | None = "SH000300"

    def __post_init__(self) -> None:
        if self.topk < 1:
            raise InvalidInputError(f"topk must be at least 1, got {self.topk}")
        if self.n_drop < 0:
            raise InvalidInputError(f"n_drop must not be negative, got {self.n_drop}")
        if self.n_drop > self.topk:
            raise InvalidInputError(f"n_drop ({self.n_drop}) cannot exceed topk ({self.topk})")
        if not 0.0 < self.risk_degree <= 1.0:
            raise InvalidInputError(f"risk_degree must be in (0, 1], got {self.risk_degree}")
        object.__setattr__(self, "rebalance", check_rebalance(self.rebalance))
        if self.hold_thresh < 0:
            raise InvalidInputError(f"hold_thresh must not be negative, got {self.hold_thresh}")
        if self.deal_price not in ("close", "open"):
            raise InvalidInputError(f"deal_price must be 'close' or 'open', got {self.deal_price!r}")
        for name in ("open_cost", "close_cost", "min_cost", "stamp_tax"):
            value = getattr(self, name)
            if not value >= 0.0:
                raise InvalidInputError(f"{name} must be a non-negative number, got {value!r}")
        if self.limit_threshold is not None and not self.limit_threshold > 0.0:
            raise InvalidInputError(f"limit_threshold must be positive or None, got {self.limit_threshold!r}")
        if self.trade_unit is not None and self.trade_unit < 1:
            raise InvalidInputError(
                f"trade_unit must be a positive share count or None, got {self.trade_unit}"
            )
        if not self.account > 0.0:
            raise InvalidInputError(f"account (the initial cash) must be positive, got {self.account!r}")
