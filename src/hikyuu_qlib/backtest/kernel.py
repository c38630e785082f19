"""The compiled day loop of a TopkDropout backtest: one pass over the days, arrays across stocks.

Per day, in Qlib's order (``SimulatorExecutor`` serial trading of ``TopkDropoutStrategy``'s orders):

1. choose sells and buys (:func:`~hikyuu_qlib.backtest.topk.select`) when the day has a signal;
2. sell each chosen held stock that is tradable and held at least ``hold_thresh`` days, whole;
3. split ``cash × risk_degree`` equally over the chosen buys (untradable ones included, as in Qlib),
   round each amount down to the trade unit in original shares, clip it by the cash left, buy in order;
4. at the close, held stocks that trade take the close as their price (suspended ones keep theirs),
   every held stock's holding count grows by one, and the account is valued.

Amounts are in adjusted shares (Qlib's convention): original shares = amount × factor.
Sells happen before buys, so a stock bought on a day is never sold that day (T+1 holds).

Numba's on-disk cache does not follow calls across modules: after editing :mod:`.topk`, delete this
package's ``__pycache__/*.nbi`` (or touch this file) so that :func:`run_days` is recompiled.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from hikyuu_qlib.backtest.topk import select

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]


@njit(cache=True)
def round_unit(amount: float, factor: float, unit: float) -> float:  # pragma: no cover - compiled
    """Round an adjusted amount down to whole trade units of original shares (Qlib's +0.1 guard)."""
    if unit <= 0.0:
        return amount
    return (amount * factor + 0.1) // unit * unit / factor


@njit(cache=True)
def run_days(
    score: F64,
    present: Bool,
    has_signal: Bool,
    close: F64,
    buy_price: F64,
    sell_price: F64,
    factor: F64,
    no_buy: Bool,
    no_sell: Bool,
    topk: int,
    n_drop: int,
    risk_degree: float,
    hold_thresh: int,
    only_tradable: bool,
    forbid_all: bool,
    open_cost: float,
    close_cost: float,
    min_cost: float,
    stamp_tax: float,
    unit: float,
    init_cash: float,
) -> tuple[F64, F64, F64, F64, I64, F64, F64, F64, F64, F64]:  # pragma: no cover - compiled
    """Returns per day ``cash, stock_value, total_cost, total_turnover, holdings`` and per day × stock
    ``amount, price`` (end-of-day holdings) and ``traded`` (signed amount), ``deal`` price, ``fee``."""
    n_days, n = close.shape
    amount = np.zeros(n)
    price = np.zeros(n)
    count = np.zeros(n, dtype=np.int64)
    held = np.zeros(n, dtype=np.bool_)
    cash = init_cash
    total_cost = 0.0
    total_turnover = 0.0

    out_cash = np.empty(n_days)
    out_stock = np.empty(n_days)
    out_cost = np.empty(n_days)
    out_turn = np.empty(n_days)
    out_hold = np.empty(n_days, dtype=np.int64)
    pos_amount = np.zeros((n_days, n))
    pos_price = np.full((n_days, n), np.nan)
    traded = np.zeros((n_days, n))
    deal = np.full((n_days, n), np.nan)
    fee = np.zeros((n_days, n))

    for i in range(n_days):
        tradable = ~(no_buy[i] | no_sell[i])
        if has_signal[i]:
            sell, buy = select(held, score[i], present[i], tradable, topk, n_drop, only_tradable)
            for j in range(n):
                if not (held[j] and sell[j]):
                    continue
                ok = tradable[j] if forbid_all else not no_sell[i, j]
                if not ok or count[j] < hold_thresh:
                    continue
                p = sell_price[i, j]
                val = amount[j] * p
                cost = max(val * close_cost, min_cost) + val * stamp_tax
                if cash + val < cost or val <= 1e-5:
                    continue
                held[j] = False
                amount[j] = 0.0
                cash += val - cost
                total_cost += cost
                total_turnover += val
                traded[i, j] = -(val / p)
                deal[i, j] = p
                fee[i, j] = cost
            n_buy = len(buy)
            target = cash * risk_degree / n_buy if n_buy > 0 else 0.0
            for k in range(n_buy):
                j = buy[k]
                ok = tradable[j] if forbid_all else not no_buy[i, j]
                if not ok:
                    continue
                p = buy_price[i, j]
                f = factor[i, j]
                want = round_unit(target / p, f, unit)
                val = want * p
                if cash < max(val * open_cost, min_cost):
                    continue
                if cash < val + max(val * open_cost, min_cost):
                    # Qlib's cash limit: below the critical value the fee is min_cost
                    most = 0.0
                    if cash >= min_cost:
                        critical = min_cost / open_cost + min_cost if open_cost > 0.0 else np.inf
                        most = cash / (1.0 + open_cost) / p if cash >= critical else (cash - min_cost) / p
                    want = round_unit(min(most, want), f, unit)
                else:
                    want = round_unit(want, f, unit)
                val = want * p
                if val <= 1e-5:
                    continue
                cost = max(val * open_cost, min_cost)
                got = val / p
                if held[j]:
                    amount[j] += got
                else:
                    held[j] = True
                    amount[j] = got
                    price[j] = p
                    count[j] = 0
                cash -= val + cost
                total_cost += cost
                total_turnover += val
                traded[i, j] = got
                deal[i, j] = p
                fee[i, j] = cost
        stock_value = 0.0
        holdings = 0
        for j in range(n):
            if not held[j]:
                continue
            c = close[i, j]
            if not np.isnan(c):
                price[j] = c
            count[j] += 1
            stock_value += amount[j] * price[j]
            holdings += 1
            pos_amount[i, j] = amount[j]
            pos_price[i, j] = price[j]
        out_cash[i] = cash
        out_stock[i] = stock_value
        out_cost[i] = total_cost
        out_turn[i] = total_turnover
        out_hold[i] = holdings
    return out_cash, out_stock, out_cost, out_turn, out_hold, pos_amount, pos_price, traded, deal, fee
