"""The synthetic stock list: codes, names, boards, sectors, listing and delisting days.

Boards and their shares of the list: Shanghai main board (600000-605999, 45 %), Shenzhen main board
(000-004, 35 %), ChiNext (SZ300/301, 12 %) and STAR (SH688/689, 8 %). The first code of each board is the
board's base code (``SH600000``, ``SZ000001``, ``SZ300001``, ``SH688001``) so that a list of any size
starts with familiar codes. About 22 % of the stocks list during the span (ChiNext and STAR more
often), about 5 % are delisted during its second half.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from hikyuu_qlib.domain import InvalidInputError, StockType

N_SECTORS = 10
SECTOR_WORDS = ("银行", "证券", "科技", "医药", "电子", "能源", "地产", "食品", "汽车", "化工")
_FIRST = ("华", "中", "东", "新", "金", "国", "海", "长", "天", "宏", "恒", "万", "瑞", "光", "永", "博")
_SECOND = ("达", "信", "通", "源", "泰", "科", "联", "盛", "安", "兴", "鑫", "润", "德", "辰", "远", "力")

# board: (market, symbol prefix base, span of symbols, share of the list, StockType, daily limit)
_BOARDS: tuple[tuple[str, int, int, float, StockType, float], ...] = (
    ("SH", 600000, 6000, 0.45, StockType.A_SHARE, 0.10),
    ("SZ", 1, 5000, 0.35, StockType.A_SHARE, 0.10),
    ("SZ", 300001, 2000, 0.12, StockType.CHINEXT, 0.20),
    ("SH", 688001, 1999, 0.08, StockType.STAR, 0.20),
)
MAX_STOCKS = 20_000


@dataclass(frozen=True, slots=True)
class Universe:
    """Per-stock attributes, all arrays of length ``n`` in code order."""

    codes: np.ndarray  # str
    markets: np.ndarray  # str
    symbols: np.ndarray  # str
    names: np.ndarray  # str
    types: np.ndarray  # int32, StockType values
    limits: np.ndarray  # float64, daily limit as a fraction
    sectors: np.ndarray  # int64 in [0, N_SECTORS)
    first_day: np.ndarray  # int64 index into the calendar of the first bar
    last_day: np.ndarray  # int64 index of the last bar (T - 1 while listed)
    start_dates: np.ndarray  # datetime64[D] listing date
    delisted: np.ndarray  # bool

    @property
    def n(self) -> int:
        return len(self.codes)


def _board_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    shares = np.array([b[3] for b in _BOARDS])
    counts = np.floor(shares * n).astype(np.int64)
    rest = n - int(counts.sum())
    if rest:
        extra = rng.choice(len(_BOARDS), size=rest, p=shares)
        counts += np.bincount(extra, minlength=len(_BOARDS))
    return np.asarray(counts, dtype=np.int64)


def make_universe(rng: np.random.Generator, n: int, days: np.ndarray) -> Universe:
    """Draw ``n`` stocks listed over the trading ``days`` (``datetime64[D]``)."""
    if not 1 <= n <= MAX_STOCKS:
        raise InvalidInputError(f"a synthetic market has 1 to {MAX_STOCKS} stocks, got {n}")
    n_days = len(days)
    counts = _board_counts(rng, n)
    markets: list[np.ndarray] = []
    symbols: list[np.ndarray] = []
    types: list[np.ndarray] = []
    limits: list[np.ndarray] = []
    late_prob: list[np.ndarray] = []
    for (market, base, span, _, stype, limit), k in zip(_BOARDS, counts, strict=True):
        if k == 0:
            continue
        offsets = np.sort(rng.choice(np.arange(1, span), size=k - 1, replace=False))
        numbers = np.concatenate([[base], base + offsets.astype(np.int64)])
        symbols.append(np.char.zfill(numbers.astype(str), 6))
        markets.append(np.full(k, market))
        types.append(np.full(k, int(stype), dtype=np.int32))
        limits.append(np.full(k, limit))
        late_prob.append(np.full(k, 0.15 if stype == StockType.A_SHARE else 0.5))
    market_arr = np.concatenate(markets)
    symbol_arr = np.concatenate(symbols)
    codes = np.char.add(market_arr, symbol_arr)
    order = np.argsort(codes, kind="stable")

    sectors = rng.integers(0, N_SECTORS, size=n)
    first = rng.integers(0, len(_FIRST), size=n)
    second = rng.integers(0, len(_SECOND), size=n)
    names = np.char.add(
        np.char.add(np.asarray(_FIRST)[first], np.asarray(_SECOND)[second]), np.asarray(SECTOR_WORDS)[sectors]
    )

    late = rng.random(n) < np.concatenate(late_prob)[order]
    late[0] = False  # the first code trades from the first day
    first_day = np.where(late, rng.integers(0, max(1, int(n_days * 0.8)), size=n), 0)
    before = rng.integers(365, 365 * 20, size=n).astype("timedelta64[D]")
    start_dates = np.where(late, days[first_day], days[0] - before)

    delisted = (rng.random(n) < 0.05) & (n_days > 10)
    delisted[0] = False
    last_day = np.full(n, n_days - 1, dtype=np.int64)
    low = np.maximum(first_day + 120, n_days // 2)
    can = delisted & (low < n_days - 1)
    last_day[can] = rng.integers(low[can], n_days - 1)
    delisted = can
    names = np.where(delisted, np.char.add("退市", names), names)

    return Universe(
        codes=codes[order],
        markets=market_arr[order],
        symbols=symbol_arr[order],
        names=names,
        types=np.concatenate(types)[order],
        limits=np.concatenate(limits)[order],
        sectors=sectors,
        first_day=first_day.astype(np.int64),
        last_day=last_day,
        start_dates=start_dates.astype("datetime64[D]"),
        delisted=delisted,
    )


def as_date(day: np.datetime64) -> dt.date:
    """A ``datetime64[D]`` as a ``datetime.date``."""
    value = day.astype("datetime64[D]").item()
    assert isinstance(value, dt.date)
    return value
