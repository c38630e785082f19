"""The path-dependent part of the trading system: one compiled pass over a (dates × codes) grid.

All codes share one cash account. On each date, in this order:

1. ex-dates: held shares receive gift shares (rounded down to whole shares) and cash bonuses; stop and
   target prices follow the price adjustment ``(p − bonus) / (1 + gift)``;
2. pending orders fill at the open (sells of all codes first, then buys) if the code has a tradable bar
   (a bar with ``high > low``; one-price bars and suspensions carry the order to the next bar);
3. at the close, holders exit on stop loss (close ≤ stop), take profit (close ≥ target) or a sell
   signal, in that order of precedence; flat codes with a buy signal (and no sell signal) place a buy.
   In "next open" mode the order waits for step 2 of the code's next bar; in "close" mode it fills at
   this close (exits before entries).
4. positions are marked to the last known close.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B1 = npt.NDArray[np.bool_]

MM_COUNT, MM_PERCENT, MM_RISK = 0, 1, 2
REASON_SIGNAL, REASON_STOP, REASON_PROFIT = 0, 1, 2
REASONS = ("signal", "stop_loss", "take_profit")
_NONE, _BUY, _SELL = 0, 1, 2


@njit(cache=True, nogil=True)
def order_cost(
    amount: float, shares: float, sell: bool, sh: bool, costs: F64
) -> float:  # pragma: no cover - compiled
    """costs = [commission, min_commission, stamp_tax, transfer_fee, min_transfer_fee]."""
    out = max(amount * costs[0], costs[1]) if amount > 0 else 0.0
    if sell:
        out += amount * costs[2]
    if sh and costs[3] > 0:
        out += max(shares * costs[3], costs[4])
    return out


@njit(cache=True, nogil=True)
def _buy_shares(
    price: float,
    cash: float,
    lot: float,
    sh: bool,
    mm_kind: int,
    mm_value: float,
    stop_pct: float,
    costs: F64,
) -> float:  # pragma: no cover - compiled
    if mm_kind == MM_COUNT:
        want = math.floor(mm_value / lot) * lot
    elif mm_kind == MM_PERCENT:  # Hikyuu: cash × p / risk a share, the whole price without a stop
        risk = price * stop_pct if stop_pct > 0 else price
        want = math.floor(cash * mm_value / (risk * lot)) * lot
    else:
        want = math.floor(mm_value / (price * stop_pct) / lot) * lot
    afford = math.floor(cash / (price * lot)) * lot
    shares = min(want, afford)
    while shares > 0 and shares * price + order_cost(shares * price, shares, False, sh, costs) > cash + 1e-9:
        shares -= lot
    return max(shares, 0.0)


@njit(cache=True, nogil=True)
def _fill(
    t: int,
    prices: F64,
    high: F64,
    low: F64,
    st: F64,
    ints: I64,
    acct: F64,
    t_int: I64,
    t_flt: F64,
    d_cost: F64,
    d_traded: F64,
    lot: F64,
    is_sh: B1,
    mm_kind: int,
    mm_value: float,
    stop_pct: float,
    profit_pct: float,
    slip: float,
    costs: F64,
) -> None:  # pragma: no cover - compiled
    """Fill the pending orders of date ``t`` at ``prices[t]``: every sell, then every buy.

    st[c] = [shares, entry_px, entry_amt, stop, target, pos_cost, income, cash_share]; ints[c] = [pending,
    reason, entry_t]; acct = [cash, trade count]. ``cash_share`` is the share of the cash before the buy
    that the buy took: (its amount + its costs) / that cash (Hikyuu's 占用现金比例).
    """
    n_c = prices.shape[1]
    for side in (_SELL, _BUY):
        for c in range(n_c):
            if ints[c, 0] != side or np.isnan(prices[t, c]) or not high[t, c] > low[t, c]:
                continue
            ints[c, 0] = _NONE
            if side == _SELL:
                px = prices[t, c] * (1.0 - slip)
                n = st[c, 0]
                amt = px * n
                fee = order_cost(amt, n, True, is_sh[c], costs)
                acct[0] += amt - fee
                k = int(acct[1])
                total_cost = st[c, 5] + fee
                t_int[k, 0], t_int[k, 1], t_int[k, 2], t_int[k, 3] = c, ints[c, 2], t, ints[c, 1]
                t_flt[k, 0], t_flt[k, 1], t_flt[k, 2] = st[c, 1], px, n
                t_flt[k, 3] = amt - st[c, 2] + st[c, 6] - total_cost
                t_flt[k, 4], t_flt[k, 5], t_flt[k, 6] = total_cost, st[c, 6], st[c, 7]
                acct[1] += 1.0
                st[c, 0] = 0.0
                ints[c, 2] = -1
            else:
                px = prices[t, c] * (1.0 + slip)
                n = _buy_shares(px, acct[0], lot[c], is_sh[c], mm_kind, mm_value, stop_pct, costs)
                if n <= 0:
                    continue
                amt = px * n
                fee = order_cost(amt, n, False, is_sh[c], costs)
                st[c, 7] = (amt + fee) / acct[0]
                acct[0] -= amt + fee
                st[c, 0], st[c, 1], st[c, 2] = n, px, amt
                st[c, 3], st[c, 4] = px * (1.0 - stop_pct), px * (1.0 + profit_pct)
                st[c, 5], st[c, 6] = fee, 0.0
                ints[c, 2] = t
            d_cost[t] += fee
            d_traded[t] += amt


@njit(cache=True, nogil=True)
def run_grid(
    open_: F64,
    high: F64,
    low: F64,
    close: F64,
    buy: B1,
    sell: B1,
    gift: F64,
    bonus: F64,
    lot: F64,
    is_sh: B1,
    mm_kind: int,
    mm_value: float,
    stop_pct: float,
    profit_pct: float,
    slip: float,
    costs: F64,
    init_cash: float,
    at_close: bool,
) -> tuple[F64, F64, F64, F64, F64, I64, F64, F64, I64]:  # pragma: no cover - compiled
    """Run the system over the grid (NaN prices where a code has no bar).

    Returns the daily cash, value, cost, traded amount and number of codes held; the closed trades as ints
    [code, entry_t, exit_t, reason] and floats [entry_price, exit_price, shares, pnl, cost, income,
    cash_share];
    and the final state per code (floats as ``st`` in ``_fill``, ints [pending, reason, entry_t]).
    """
    n_t, n_c = close.shape
    st = np.zeros((n_c, 8))
    ints = np.zeros((n_c, 3), dtype=np.int64)
    ints[:, 2] = -1
    acct = np.array([init_cash, 0.0])
    last_close = np.full(n_c, np.nan)
    d_cash = np.empty(n_t)
    d_value = np.empty(n_t)
    d_cost = np.zeros(n_t)
    d_traded = np.zeros(n_t)
    d_held = np.zeros(n_t)
    cap = n_c * (n_t // 2 + 1) + 1
    t_int = np.empty((cap, 4), dtype=np.int64)
    t_flt = np.empty((cap, 7))
    for t in range(n_t):
        for c in range(n_c):
            g, b = gift[t, c], bonus[t, c]
            if st[c, 0] > 0 and (g != 0.0 or b != 0.0):
                acct[0] += st[c, 0] * b
                st[c, 6] += st[c, 0] * b
                st[c, 0] += math.floor(st[c, 0] * g)
                st[c, 3] = (st[c, 3] - b) / (1.0 + g)
                st[c, 4] = (st[c, 4] - b) / (1.0 + g)
        if not at_close:
            _fill(
                t,
                open_,
                high,
                low,
                st,
                ints,
                acct,
                t_int,
                t_flt,
                d_cost,
                d_traded,
                lot,
                is_sh,
                mm_kind,
                mm_value,
                stop_pct,
                profit_pct,
                slip,
                costs,
            )
        for c in range(n_c):
            px = close[t, c]
            if np.isnan(px):
                continue
            last_close[c] = px
            if st[c, 0] > 0:
                if ints[c, 0] != _NONE or (at_close and ints[c, 2] == t):
                    continue
                if stop_pct > 0 and px <= st[c, 3]:
                    ints[c, 0], ints[c, 1] = _SELL, REASON_STOP
                elif profit_pct > 0 and px >= st[c, 4]:
                    ints[c, 0], ints[c, 1] = _SELL, REASON_PROFIT
                elif sell[t, c]:
                    ints[c, 0], ints[c, 1] = _SELL, REASON_SIGNAL
            elif ints[c, 0] == _BUY and sell[t, c]:
                ints[c, 0] = _NONE
            elif ints[c, 0] == _NONE and buy[t, c] and not sell[t, c]:
                ints[c, 0] = _BUY
        if at_close:
            _fill(
                t,
                close,
                high,
                low,
                st,
                ints,
                acct,
                t_int,
                t_flt,
                d_cost,
                d_traded,
                lot,
                is_sh,
                mm_kind,
                mm_value,
                stop_pct,
                profit_pct,
                slip,
                costs,
            )
        value = 0.0
        for c in range(n_c):
            if st[c, 0] > 0:
                value += st[c, 0] * last_close[c]
                d_held[t] += 1.0
        d_cash[t] = acct[0]
        d_value[t] = value
    n_tr = int(acct[1])
    return d_cash, d_value, d_cost, d_traded, d_held, t_int[:n_tr].copy(), t_flt[:n_tr].copy(), st, ints
