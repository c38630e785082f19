"""Technical indicators as Hikyuu / TDX users know them, as polars expressions over a bars frame.

Every expression is computed per code (``.over(code)``) for the whole universe at once; the frame must
be sorted by datetime within each code (``add_indicators`` checks). Warm-up rows and conventions:

* ``MA(n)``: simple mean of the last ``n`` values; null for the first ``n - 1`` rows of a code.
* ``EMA(n)``: ``Y = (2 X + (n - 1) Y') / (n + 1)`` seeded with the code's first value (TDX/Hikyuu).
  TA-Lib seeds with the mean of the first ``n`` values; the two agree once the seed has decayed.
* ``SMA(n, m)``: the China-style weighted mean ``Y = (m X + (n - m) Y') / n`` seeded with the first value.
* ``MACD(fast, slow, signal)``: ``dif = EMA(C, fast) - EMA(C, slow)``, ``dea = EMA(dif, signal)`` and the
  bar ``macd = 2 (dif - dea)`` (the doubled histogram of Chinese software; TA-Lib's histogram is half).
* ``KDJ(n, m1, m2)``: ``RSV = (C - LLV(L, n)) / (HHV(H, n) - LLV(L, n)) * 100`` over the available bars
  (shorter windows at the start of a code, RSV = 50 when the window's range is zero);
  ``K = SMA(RSV, m1, 1)`` and ``D = SMA(K, m2, 1)`` both start from 50 (the first K is
  ``(RSV + 2 * 50) / 3``), ``J = 3 K - 2 D``.
* ``RSI(n)``: ``SMA(max(C - C', 0), n, 1) / SMA(|C - C'|, n, 1) * 100``, i.e. Wilder's smoothing
  (alpha = 1/n) as the TDX formula and Hikyuu write it, seeded with the first change; null on a code's
  first row and while the mean absolute change is zero. TA-Lib seeds Wilder's means with simple means
  of the first ``n`` changes; the values converge after the warm-up.
* ``BOLL(n, width)``: ``mid = MA(C, n)``, ``upper/lower = mid ± width * std`` with the population
  standard deviation (``ddof = 0``, as TA-Lib's BBANDS); ``ddof = 1`` gives the sample deviation.
* ``ATR(n)``: true range ``max(H - L, |H - C'|, |L - C'|)`` (``H - L`` on a code's first row), smoothed
  with Wilder's mean (alpha = 1/n, TA-Lib's definition up to its seed) or, with ``method="ma"``, the
  simple ``MA(TR, n)`` of the TDX formula (null for the first ``n - 1`` rows).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

import polars as pl

from hikyuu_qlib.domain import InvalidInputError

AtrMethod = Literal["wilder", "ma"]
_BY = "code"


def _check_window(name: str, n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise InvalidInputError(f"{name} window must be a positive integer, got {n!r}")


def _weighted(x: pl.Expr, alpha: float) -> pl.Expr:
    """``Y = alpha X + (1 - alpha) Y'`` seeded with the first value (inside a window)."""
    return x.ewm_mean(alpha=alpha, adjust=False)


def _weighted_from(x: pl.Expr, alpha: float, start: float) -> pl.Expr:
    """``Y = alpha X + (1 - alpha) Y'`` with ``Y'`` = ``start`` before the first row (inside a window).

    The first row is replaced by its own recursion step ``alpha X_0 + (1 - alpha) start`` and the EWM
    seeded with it, which references ``x`` once (keeps nested indicators such as KDJ's D cheap).
    """
    first = pl.int_range(pl.len()) == 0
    scale = pl.when(first).then(pl.lit(alpha)).otherwise(pl.lit(1.0))
    shift = pl.when(first).then(pl.lit((1.0 - alpha) * start)).otherwise(pl.lit(0.0))
    return _weighted(x * scale + shift, alpha)


# Every public function builds its formula from plain expressions and applies ``.over(by)`` once at
# the top: nested window expressions would be evaluated far more slowly.


def ma(col: str = "close", n: int = 20, *, by: str = _BY) -> pl.Expr:
    """Simple moving average of ``n`` rows (null during the first ``n - 1`` rows of a code)."""
    _check_window("MA", n)
    return pl.col(col).rolling_mean(n, min_samples=n).over(by)


def ema(col: str = "close", n: int = 12, *, by: str = _BY) -> pl.Expr:
    """Exponential moving average ``(2 X + (n - 1) Y') / (n + 1)``, seeded with the first value."""
    _check_window("EMA", n)
    return _weighted(pl.col(col), 2.0 / (n + 1)).over(by)


def sma(col: str = "close", n: int = 6, m: int = 1, *, by: str = _BY) -> pl.Expr:
    """China-style SMA ``(m X + (n - m) Y') / n`` (``0 < m <= n``), seeded with the first value."""
    _check_window("SMA", n)
    if not isinstance(m, int) or not 0 < m <= n:
        raise InvalidInputError(f"SMA weight m must satisfy 0 < m <= n={n}, got {m!r}")
    return _weighted(pl.col(col), m / n).over(by)


def macd(
    col: str = "close", fast: int = 12, slow: int = 26, signal: int = 9, *, by: str = _BY
) -> dict[str, pl.Expr]:
    """``dif``, ``dea`` and the bar ``macd = 2 (dif - dea)``."""
    for name, n in (("MACD fast", fast), ("MACD slow", slow), ("MACD signal", signal)):
        _check_window(name, n)
    if fast >= slow:
        raise InvalidInputError(f"MACD fast window must be shorter than the slow one, got {fast} >= {slow}")
    x = pl.col(col)
    dif = _weighted(x, 2.0 / (fast + 1)) - _weighted(x, 2.0 / (slow + 1))
    dea = _weighted(dif, 2.0 / (signal + 1))
    return {"dif": dif.over(by), "dea": dea.over(by), "macd": (2.0 * (dif - dea)).over(by)}


def kdj(
    n: int = 9,
    m1: int = 3,
    m2: int = 3,
    *,
    high: str = "high",
    low: str = "low",
    close: str = "close",
    by: str = _BY,
) -> dict[str, pl.Expr]:
    """``k``, ``d`` and ``j`` of the stochastic oscillator, China style (K and D start from 50)."""
    for name, w in (("KDJ n", n), ("KDJ m1", m1), ("KDJ m2", m2)):
        _check_window(name, w)
    lowest = pl.col(low).rolling_min(n, min_samples=1)
    highest = pl.col(high).rolling_max(n, min_samples=1)
    rsv = ((pl.col(close) - lowest) / (highest - lowest) * 100.0).fill_nan(50.0)  # 0/0 on a flat window
    k = _weighted_from(rsv, 1.0 / m1, 50.0)
    d = _weighted_from(k, 1.0 / m2, 50.0)
    return {"k": k.over(by), "d": d.over(by), "j": (3.0 * k - 2.0 * d).over(by)}


def rsi(col: str = "close", n: int = 14, *, by: str = _BY) -> pl.Expr:
    """Relative strength index with Wilder's smoothing (``SMA(·, n, 1)``), 0-100."""
    _check_window("RSI", n)
    change = pl.col(col).diff()
    gain = _weighted(change.clip(lower_bound=0.0), 1.0 / n)
    move = _weighted(change.abs(), 1.0 / n)
    return pl.when(move > 0).then(gain / move * 100.0).otherwise(None).over(by)


def boll(
    col: str = "close", n: int = 20, width: float = 2.0, *, ddof: int = 0, by: str = _BY
) -> dict[str, pl.Expr]:
    """Bollinger bands ``mid``, ``upper`` and ``lower`` (population std by default)."""
    _check_window("BOLL", n)
    mid = pl.col(col).rolling_mean(n, min_samples=n)
    std = pl.col(col).rolling_std(n, min_samples=n, ddof=ddof)
    return {"mid": mid.over(by), "upper": (mid + width * std).over(by), "lower": (mid - width * std).over(by)}


def _true_range(high: str, low: str, close: str) -> pl.Expr:
    prev = pl.col(close).shift(1)
    return pl.max_horizontal(
        pl.col(high) - pl.col(low), (pl.col(high) - prev).abs(), (pl.col(low) - prev).abs()
    )


def true_range(*, high: str = "high", low: str = "low", close: str = "close", by: str = _BY) -> pl.Expr:
    """``max(H - L, |H - C'|, |L - C'|)``; ``H - L`` on a code's first row."""
    return _true_range(high, low, close).over(by)


def atr(
    n: int = 14,
    method: AtrMethod = "wilder",
    *,
    high: str = "high",
    low: str = "low",
    close: str = "close",
    by: str = _BY,
) -> pl.Expr:
    """Average true range: Wilder's mean of the true range, or its simple ``MA`` with ``method="ma"``."""
    _check_window("ATR", n)
    tr = _true_range(high, low, close)
    if method == "wilder":
        return _weighted(tr, 1.0 / n).over(by)
    if method == "ma":
        return tr.rolling_mean(n, min_samples=n).over(by)
    raise InvalidInputError(f"unknown ATR method {method!r}: expected 'wilder' or 'ma'")


_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z]+)\s*(?:\((?P<args>[^)]*)\))?\s*$")
# name: (number of parameters, default parameters)
_FACTORIES: dict[str, tuple[int, tuple[float, ...]]] = {
    "ma": (1, (20,)),
    "ema": (1, (12,)),
    "sma": (2, (6, 1)),
    "rsi": (1, (14,)),
    "atr": (1, (14,)),
    "macd": (3, (12, 26, 9)),
    "kdj": (3, (9, 3, 3)),
    "boll": (2, (20, 2.0)),
}


def parse_spec(spec: str, *, by: str = _BY) -> dict[str, pl.Expr]:
    """Output columns of one indicator spec such as ``MA(20)``, ``MACD`` or ``BOLL(20, 2)``.

    Names: ``ma20``, ``ema12``, ``sma6_1``, ``rsi14``, ``atr14``; multi-output indicators prefix their
    fields with the indicator name, plus the parameters when they are not the defaults:
    ``macd_dif``/``macd_dea``/``macd_macd``, ``kdj_k``…, ``boll_mid``…, ``boll10_3_upper``.
    Every indicator reads the ``close`` (and ``high``/``low``) columns.
    """
    match = _SPEC.match(spec)
    if match is None or match.group("name").lower() not in _FACTORIES:
        known = ", ".join(k.upper() for k in _FACTORIES)
        raise InvalidInputError(
            f"invalid indicator spec {spec!r}: expected NAME or NAME(args) with NAME in {known}"
        )
    name = match.group("name").lower()
    size, defaults = _FACTORIES[name]
    raw = [a.strip() for a in (match.group("args") or "").split(",") if a.strip()]
    if len(raw) > size:
        raise InvalidInputError(
            f"invalid indicator spec {spec!r}: {name.upper()} takes at most {size} argument(s)"
        )
    try:
        values = [float(a) for a in raw]
    except ValueError:
        raise InvalidInputError(f"invalid indicator spec {spec!r}: arguments must be numbers") from None
    params = [*values, *defaults[len(values) :]]
    ints = [int(v) for v in params]
    if any(v != i for v, i in zip(params, ints, strict=True)) and name != "boll":
        raise InvalidInputError(f"invalid indicator spec {spec!r}: {name.upper()} takes integer windows")
    tag = "_".join(f"{v:g}" for v in params)
    if name == "ma":
        return {f"ma{tag}": ma("close", ints[0], by=by)}
    if name == "ema":
        return {f"ema{tag}": ema("close", ints[0], by=by)}
    if name == "sma":
        return {f"sma{tag}": sma("close", ints[0], ints[1], by=by)}
    if name == "rsi":
        return {f"rsi{tag}": rsi("close", ints[0], by=by)}
    if name == "atr":
        return {f"atr{tag}": atr(ints[0], by=by)}
    if name == "macd":
        fields = macd("close", ints[0], ints[1], ints[2], by=by)
    elif name == "kdj":
        fields = kdj(ints[0], ints[1], ints[2], by=by)
    else:
        if params[0] != ints[0]:
            raise InvalidInputError(f"invalid indicator spec {spec!r}: BOLL takes an integer window")
        fields = boll("close", ints[0], params[1], by=by)
    prefix = name if params == list(defaults) else f"{name}{tag}"
    return {f"{prefix}_{field}": expr for field, expr in fields.items()}


def add_indicators(
    frame: pl.DataFrame, specs: Sequence[str] | Mapping[str, pl.Expr], *, by: str = _BY
) -> pl.DataFrame:
    """``frame`` with one column per indicator output.

    ``specs`` are spec strings (see :func:`parse_spec`) or a mapping of output column name to
    expression (from the functions of this module). ``frame`` must hold ``by`` and ``datetime`` and be
    sorted by datetime within each code.
    """
    if by not in frame.columns or "datetime" not in frame.columns:
        raise InvalidInputError(f"indicator frame needs {by!r} and 'datetime' columns, got {frame.columns}")
    unsorted = frame.select((pl.col("datetime").diff().over(by) <= pl.duration(milliseconds=0)).any()).item()
    if unsorted:
        raise InvalidInputError(
            f"indicator frame must be sorted by datetime within each {by!r}, without duplicates"
        )
    if isinstance(specs, Mapping):
        columns = dict(specs)
    else:
        if isinstance(specs, str):
            raise InvalidInputError(f"indicator specs must be a sequence of specs, got the string {specs!r}")
        columns = {}
        for spec in specs:
            columns.update(parse_spec(spec, by=by))
    clash = sorted(set(columns) & set(frame.columns))
    if clash:
        raise InvalidInputError(f"indicator columns {clash} already exist in the frame")
    return frame.with_columns(expr.alias(name) for name, expr in columns.items())
