"""Point-in-time universes of the synthetic market, as membership spans (``MEMBERSHIP_SCHEMA``).

* ``all``: every stock from its first to its last bar.
* ``csi100`` / ``csi300``: CSI-like size indexes of the 100 / 300 largest stocks. Rebalanced on the first
  trading day of the span and on the first trading day on or after 15 June and 15 December; ranked by
  the mean total market value (close x total shares) over the 120 trading days before the rebalance
  (the previous close on the first day); eligible are stocks listed that day (suspended ones too)
  for at least 60 trading days (or listed before the span began). A delisted stock leaves on its
  last bar. With fewer eligible stocks than the index size every eligible stock is a member.
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
    days: np.ndarray, uni: Universe, ref: np.ndarray, total: np.ndarray, sizes: dict[str, int]
) -> dict[str, pl.DataFrame]:
    """Membership spans of top-k size indexes, one frame per name in ``sizes`` (see the module docstring)."""
    n_days, n = ref.shape
    reb = rebalance_days(days)
    steps = np.arange(n_days)[:, None]
    proxy = np.empty((len(reb), n))
    for k, day in enumerate(reb):
        lo = max(int(day) - _WINDOW, 0)
        hi = max(int(day), 1)  # day 0: the previous close, i.e. the first reference price
        alive = (steps[lo:hi] >= uni.first_day) & (steps[lo:hi] <= uni.last_day)
        cap = np.where(alive, ref[lo:hi] * total[lo:hi], 0.0)
        proxy[k] = cap.sum(axis=0) / np.maximum(alive.sum(axis=0), 1)
    listed = (reb[:, None] >= uni.first_day) & (reb[:, None] <= uni.last_day)
    seasoned = (reb[:, None] - uni.first_day >= _SEASONING) | (uni.start_dates < days[0])
    eligible = listed & seasoned
    score = np.where(eligible, proxy, -np.inf)
    rank = np.argsort(np.argsort(-score, axis=1, kind="stable"), axis=1)
    period_end = np.append(reb[1:] - 1, n_days - 1)
    out: dict[str, pl.DataFrame] = {}
    for name, size in sizes.items():
        member = eligible & (rank < size)
        padded = np.vstack([np.zeros(n, dtype=np.int8), member.astype(np.int8), np.zeros(n, dtype=np.int8)])
        step = np.diff(padded, axis=0)
        s_stock, s_k = np.nonzero(step.T == 1)
        e_stock, e_k = np.nonzero(step.T == -1)
        end = np.minimum(period_end[e_k - 1], uni.last_day[e_stock])
        out[name] = _frame(uni.codes[s_stock], days[reb[s_k]], days[end])
    return out


def _frame(codes: np.ndarray, start: np.ndarray, end: np.ndarray) -> pl.DataFrame:
    frame = pl.DataFrame(
        {"code": codes, "start": start.astype("datetime64[ms]"), "end": end.astype("datetime64[ms]")}
    )
    return frame.cast(MEMBERSHIP_SCHEMA).sort("code", "start")  # type: ignore[arg-type]
