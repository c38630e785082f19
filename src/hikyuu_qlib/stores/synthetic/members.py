"""Point-in-time universes of the synthetic market, as membership spans (``MEMBERSHIP_SCHEMA``).

* ``all``: every stock from its first to its last bar.
* ``csi100`` / ``csi300``: CSI-like size indexes of the 100 / 300 largest stocks. Rebalanced on the first
  trading day of the span and on the first trading day on or after 15 June and 15 December; ranked by
  the mean total market value (close x total shares) over the 120 trading days before the rebalance
  (the previous close on the first day); eligible are stocks listed that day (suspended ones too) and listed for at least
  60 trading days (or before the span began). A delisted stock leaves on its last bar. With fewer
  eligible stocks than the index size every eligible stock is a member.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hikyuu_qlib.domain.schema import MEMBERSHIP_SCHEMA
from hikyuu_qlib.stores.synthetic.universe import Universe

INDEX_SIZES: dict[str, int] = {"csi100": 100, "csi300": 300}
UNIVERSES: tuple[str, ...] = ("all", *INDEX_SIZES)
_WINDOW = 120
_SEASONING = 60


def all_spans(days: np.ndarray, uni: Universe, trading: np.ndarray) -> pl.DataFrame:
    """Each stock from its first to its last bar."""
    n_days = trading.shape[0]
    first = np.argmax(trading, axis=0)
    last = n_days - 1 - np.argmax(trading[::-1], axis=0)
    return _frame(uni.codes, days[first], days[last])


def rebalance_days(days: np.ndarray) -> np.ndarray:
    """Calendar indexes of the rebalances: day 0 and the first days on/after 15 June and 15 December."""
    years = np.unique(days.astype("datetime64[Y]"))
    marks = np.concatenate([years + np.timedelta64(5, "M"), years + np.timedelta64(11, "M")])
    marks = marks.astype("datetime64[D]") + np.timedelta64(14, "D")
    idx = np.searchsorted(days, marks)
    return np.unique(np.concatenate([[0], idx[idx < len(days)]]))


def index_spans(
    days: np.ndarray, uni: Universe, trading: np.ndarray, ref: np.ndarray, total: np.ndarray, size: int
) -> pl.DataFrame:
    """Membership spans of the top-``size`` index (see the module docstring)."""
    n_days, n = trading.shape
    reb = rebalance_days(days)
    alive = (np.arange(n_days)[:, None] >= uni.first_day) & (np.arange(n_days)[:, None] <= uni.last_day)
    cap = np.where(alive, ref * total, 0.0)  # ref is the previous close (ex-right on ex-dates)
    csum = np.vstack([np.zeros(n), np.cumsum(cap, axis=0)])
    cnt = np.vstack([np.zeros(n), np.cumsum(alive, axis=0)])
    lo = np.maximum(reb - _WINDOW, 0)
    hi = np.maximum(reb, 1)  # the previous close on day 0
    num, den = csum[hi] - csum[lo], cnt[hi] - cnt[lo]
    proxy = np.where(reb[:, None] == 0, cap[0], num / np.maximum(den, 1.0))
    seasoned = (reb[:, None] - uni.first_day >= _SEASONING) | (uni.start_dates < days[0])
    eligible = alive[reb] & seasoned
    score = np.where(eligible, proxy, -np.inf)
    rank = np.argsort(np.argsort(-score, axis=1, kind="stable"), axis=1)
    member = eligible & (rank < size)

    padded = np.vstack([np.zeros(n, dtype=np.int8), member.astype(np.int8), np.zeros(n, dtype=np.int8)])
    step = np.diff(padded, axis=0)
    s_stock, s_k = np.nonzero(step.T == 1)
    e_stock, e_k = np.nonzero(step.T == -1)
    period_end = np.append(reb[1:] - 1, n_days - 1)
    start = reb[s_k]
    end = np.minimum(period_end[e_k - 1], uni.last_day[e_stock])
    return _frame(uni.codes[s_stock], days[start], days[end])


def _frame(codes: np.ndarray, start: np.ndarray, end: np.ndarray) -> pl.DataFrame:
    frame = pl.DataFrame(
        {"code": codes, "start": start.astype("datetime64[ms]"), "end": end.astype("datetime64[ms]")}
    )
    return frame.cast(MEMBERSHIP_SCHEMA).sort("code", "start")  # type: ignore[arg-type]
