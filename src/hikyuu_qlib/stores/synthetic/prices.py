"""Close prices of the synthetic market: one pass over the days, vectorised over the stocks.

Model of the daily log return of stock *i* on day *t* (before limits)::

    r = drift + beta_i * m_t + load_i * f_{sector(i), t} + sigma_i * s_{i,t} * z_{i,t} + mu_{i,t}

* ``m`` the market factor with GARCH(1, 1) volatility and Student-t (5 dof) shocks;
* ``f`` ten sector factors, Student-t shocks;
* ``z`` Student-t (4 dof) idiosyncratic shocks scaled by a per-stock GARCH-like ``s``;
* ``mu`` the planted signal: ``sigma_i * (A_REV * reversal + B_QUALITY * q)`` where ``reversal`` is minus the
  cross-sectionally demeaned last 5-day return in units of the stock's volatility and ``q`` is a slow AR(1)
  latent "quality" that also lowers the stock's turnover (see :mod:`.bars`), plus a very weak pull of the
  price towards its starting level (keeps prices in a plausible range over long spans).

Prices live on the 0.01 tick. A day's close is limited to
``[ceil(ref * (1 - limit)), floor(ref * (1 + limit))]`` ticks of the reference price ``ref`` (the
previous close, or on an ex-date the ex-right reference price); the
part of the return that the limit cuts off is carried to the next trading days (so strong moves produce
runs of limit days), as is the return accrued while a stock is suspended.

Ex-dates: cash dividends and bonus shares (送股/转增) change the reference price to
``(prev_close - bonus / 10) / (1 + (gift + increase) / 10)``, rounded to the tick — the ex-right price that
Hikyuu's forward adjustment divides out, so adjusted prices run on without a jump.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from hikyuu_qlib.stores.synthetic.universe import Universe

A_REV = 0.045  # weight of the 5-day reversal in units of daily volatility
B_QUALITY = 0.035  # weight of the latent quality
Q_RHO = 0.97  # persistence of the latent quality (half-life ~ 23 days)
KAPPA = 1.0 / 500.0  # daily pull of log price towards its starting level
DRIFT = 0.0002
_GARCH_A, _GARCH_B = 0.07, 0.9
_EPS = 1e-7


@dataclass(frozen=True, slots=True)
class Events:
    """Ex-date events, one entry per event, sorted by day."""

    day: np.ndarray  # int64 calendar index
    stock: np.ndarray  # int64
    bonus: np.ndarray  # yuan per 10 shares
    gift: np.ndarray  # bonus shares per 10 (送股)
    increase: np.ndarray  # capitalisation shares per 10 (转增)


@dataclass(frozen=True, slots=True)
class Paths:
    """(days x stocks) matrices of the price pass."""

    close: np.ndarray
    ref: np.ndarray  # reference price of each day (previous close or ex-right price)
    pending: np.ndarray  # return still owed after the day's limit (> 0: demand left at the limit-up)
    vol: np.ndarray  # the day's volatility sigma_i * s_{i,t}
    quality: np.ndarray  # the latent quality q
    trading: np.ndarray  # bool: the stock has a bar that day
    events: Events


def standard_t(rng: np.random.Generator, dof: float, size: tuple[int, ...]) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    scale = float(np.sqrt((dof - 2.0) / dof))
    return np.asarray(rng.standard_t(dof, size=size)) * scale


def ar1(rng: np.random.Generator, rho: float, size: tuple[int, int], burn: int = 200) -> np.ndarray:
    """A stationary unit-variance AR(1) along axis 0."""
    shocks = rng.standard_normal((size[0] + burn, size[1])) * np.sqrt(1.0 - rho * rho)
    path = lfilter([1.0], [1.0, -rho], shocks, axis=0)
    return np.asarray(path[burn:])


def suspensions(rng: np.random.Generator, n_days: int, n: int) -> np.ndarray:
    """Bool (days x stocks): runs of suspended days, ~0.6 spells a stock-year, mostly short."""
    counts = rng.poisson(0.6 * n_days / 244.0, size=n)
    stock = np.repeat(np.arange(n), counts)
    starts = rng.integers(0, n_days, size=len(stock))
    long = rng.random(len(stock)) < 0.12
    length = np.where(long, rng.integers(20, 80, size=len(stock)), rng.geometric(0.3, size=len(stock)))
    delta = np.zeros((n_days + 1, n), dtype=np.int32)
    np.add.at(delta, (starts, stock), 1)
    np.add.at(delta, (np.minimum(starts + length, n_days), stock), -1)
    return np.asarray(np.cumsum(delta[:-1], axis=0) > 0)


def _event_plan(
    rng: np.random.Generator, days: np.ndarray, trading: np.ndarray, first_day: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate ex-dates: about 70 % of the stocks a year, between 20 May and 31 July."""
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    n = trading.shape[1]
    cand_day: list[np.ndarray] = []
    cand_stock: list[np.ndarray] = []
    for year in np.unique(years):
        lo = np.searchsorted(days, np.datetime64(f"{year}-05-20"))
        hi = np.searchsorted(days, np.datetime64(f"{year}-08-01"))
        if hi <= lo:
            continue
        pick = rng.random(n) < 0.7
        day = rng.integers(lo, hi, size=n)
        cand_day.append(day[pick])
        cand_stock.append(np.arange(n)[pick])
    day = np.concatenate(cand_day) if cand_day else np.zeros(0, dtype=np.int64)
    stock = np.concatenate(cand_stock) if cand_stock else np.zeros(0, dtype=np.int64)
    ok = trading[day, stock] & (day > first_day[stock])
    order = np.lexsort((stock[ok], day[ok]))
    return day[ok][order], stock[ok][order]


def simulate_closes(rng: np.random.Generator, days: np.ndarray, uni: Universe) -> Paths:
    """Run the price pass over the calendar ``days`` for the stocks of ``uni``."""
    n_days, n = len(days), uni.n
    shape = (n_days, n)
    t_index = np.arange(n_days)[:, None]
    alive = (t_index >= uni.first_day) & (t_index <= uni.last_day)
    trading = alive & ~suspensions(rng, n_days, n)
    trading[uni.first_day, np.arange(n)] = True

    board_scale = np.where(uni.limits > 0.15, 1.3, 1.0)
    sigma = np.clip(np.exp(rng.normal(np.log(0.018), 0.3, n)), 0.009, 0.04) * board_scale
    beta = np.clip(rng.normal(1.0, 0.25, n), 0.4, 1.7)
    load = np.clip(rng.normal(1.0, 0.2, n), 0.5, 1.5)
    p0 = np.round(np.exp(rng.uniform(np.log(3.0), np.log(100.0), n)), 2)

    market = _garch_series(rng, n_days, 0.012, dof=5.0)
    sector = standard_t(rng, 5.0, (n_days, 10)) * 0.007
    sector_ret = sector[:, uni.sectors] * load
    shocks = standard_t(rng, 4.0, shape)
    quality = ar1(rng, Q_RHO, shape)
    base = DRIFT + market[:, None] * beta + sector_ret

    ev_day, ev_stock = _event_plan(rng, days, trading, uni.first_day)
    ev_yield = rng.uniform(0.002, 0.02, len(ev_day))
    ev_stock_only = rng.random(len(ev_day)) < 0.1
    ev_gift_draw = rng.random(len(ev_day))
    ev_gift_size = rng.choice(np.array([2.0, 3.0, 5.0, 10.0]), size=len(ev_day))
    ev_gift_kind = rng.random(len(ev_day)) < 0.5
    ev_bounds = np.searchsorted(ev_day, np.arange(n_days + 1))
    ev_bonus = np.zeros(len(ev_day))
    ev_gift = np.zeros(len(ev_day))

    close = np.empty(shape)
    ref_m = np.empty(shape)
    pend_m = np.empty(shape)
    vol_m = np.empty(shape)
    prev = p0.copy()
    log_anchor = np.log(p0)
    pending = np.zeros(n)
    s2 = np.ones(n)
    z_prev = np.zeros(n)
    ring = np.zeros((5, n))
    r5 = np.zeros(n)
    up_factor = 1.0 + uni.limits
    dn_factor = 1.0 - uni.limits
    for t in range(n_days):
        live, trade = alive[t], trading[t]
        s2 = (1.0 - _GARCH_A - _GARCH_B) + _GARCH_A * z_prev * z_prev + _GARCH_B * s2
        vol = sigma * np.sqrt(s2)
        z_prev = shocks[t]
        n_live = max(int(live.sum()), 1)
        rev = -(r5 - float(r5[live].sum()) / n_live) / (sigma * np.sqrt(5.0))
        mu = sigma * (A_REV * rev + B_QUALITY * quality[t]) - KAPPA * (np.log(prev) - log_anchor)
        latent = base[t] + vol * z_prev + mu

        ref = prev.copy()
        lo, hi = ev_bounds[t], ev_bounds[t + 1]
        if hi > lo:
            idx = ev_stock[lo:hi]
            bonus = np.where(ev_stock_only[lo:hi], 0.0, np.round(ev_yield[lo:hi] * prev[idx] * 10.0, 2))
            # dear stocks issue bonus shares more often
            gift_odds = np.clip((prev[idx] - 15.0) / 50.0, 0.0, 0.8)
            gift = np.where(ev_gift_draw[lo:hi] < gift_odds, ev_gift_size[lo:hi], 0.0)
            ex = np.round((prev[idx] - bonus / 10.0) / (1.0 + gift / 10.0), 2)
            ref[idx] = np.maximum(ex, 0.01)
            log_anchor[idx] -= np.log(prev[idx] / ref[idx])
            ev_bonus[lo:hi], ev_gift[lo:hi] = bonus, gift

        target = pending + latent
        up = np.floor(ref * up_factor * 100.0 + _EPS) / 100.0
        dn = np.ceil(ref * dn_factor * 100.0 - _EPS) / 100.0
        today = np.clip(np.round(ref * np.exp(target), 2), dn, up)
        today = np.maximum(today, 0.01)
        realized = np.log(today / ref)
        pending = np.clip(np.where(trade, target - realized, np.where(live, target, 0.0)), -1.0, 1.0)
        today = np.where(trade, today, prev)
        r1 = np.where(trade, realized, 0.0)
        slot = t % 5
        r5 += r1 - ring[slot]
        ring[slot] = r1
        close[t], ref_m[t], pend_m[t], vol_m[t] = today, ref, pending, vol
        prev = today

    keep = (ev_bonus > 0) | (ev_gift > 0)
    increase = np.where(ev_gift_kind[keep], ev_gift[keep], 0.0)
    events = Events(ev_day[keep], ev_stock[keep], ev_bonus[keep], ev_gift[keep] - increase, increase)
    return Paths(close, ref_m, pend_m, vol_m, quality, trading, events)


def _garch_series(rng: np.random.Generator, n_days: int, sigma: float, dof: float) -> np.ndarray:
    z = standard_t(rng, dof, (n_days,))
    out = np.empty(n_days)
    s2, z_prev = 1.0, 0.0
    for t in range(n_days):
        s2 = (1.0 - _GARCH_A - _GARCH_B) + _GARCH_A * z_prev * z_prev + _GARCH_B * s2
        z_prev = float(z[t])
        out[t] = sigma * np.sqrt(s2) * z_prev
    return out
