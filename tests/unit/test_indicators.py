"""Technical indicators against independent references: plain-loop formulas, hand values and TA-Lib."""

from __future__ import annotations

import datetime as dt
import importlib.util

import numpy as np
import polars as pl
import pytest
from tests.conftest import require

from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.factors.indicators import (
    add_indicators,
    atr,
    boll,
    ema,
    kdj,
    ma,
    macd,
    parse_spec,
    rsi,
    sma,
    true_range,
)

NAN = float("nan")

# --- plain-loop references (written from the formulas, independent of the implementation) ----------


def ref_ma(x: list[float], n: int) -> list[float]:
    return [NAN if i < n - 1 else sum(x[i - n + 1 : i + 1]) / n for i in range(len(x))]


def ref_weighted(x: list[float], n: int, m: int, start: float | None = None) -> list[float]:
    """Y = (m X + (n - m) Y') / n; Y' before the first row is ``start`` or the first value."""
    out: list[float] = []
    prev = x[0] if start is None else start
    for value in x:
        prev = (m * value + (n - m) * prev) / n
        out.append(prev)
    return out


def ref_ema(x: list[float], n: int) -> list[float]:
    return ref_weighted(x, n + 1, 2)


def ref_kdj(high: list[float], low: list[float], close: list[float], n: int = 9) -> tuple[list[float], ...]:
    k_prev, d_prev = 50.0, 50.0
    ks, ds, js = [], [], []
    for i in range(len(close)):
        lo = min(low[max(0, i - n + 1) : i + 1])
        hi = max(high[max(0, i - n + 1) : i + 1])
        rsv = 50.0 if hi == lo else (close[i] - lo) / (hi - lo) * 100
        k_prev = (rsv + 2 * k_prev) / 3
        d_prev = (k_prev + 2 * d_prev) / 3
        ks.append(k_prev)
        ds.append(d_prev)
        js.append(3 * k_prev - 2 * d_prev)
    return ks, ds, js


def ref_rsi(close: list[float], n: int) -> list[float]:
    out = [NAN]
    gain = move = 0.0
    for i in range(1, len(close)):
        change = close[i] - close[i - 1]
        if i == 1:
            gain, move = max(change, 0.0), abs(change)
        else:
            gain = (max(change, 0.0) + (n - 1) * gain) / n
            move = (abs(change) + (n - 1) * move) / n
        out.append(gain / move * 100 if move > 0 else NAN)
    return out


def ref_true_range(high: list[float], low: list[float], close: list[float]) -> list[float]:
    out = [high[0] - low[0]]
    for i in range(1, len(close)):
        c = close[i - 1]
        out.append(max(high[i] - low[i], abs(high[i] - c), abs(low[i] - c)))
    return out


def ref_boll(x: list[float], n: int, width: float) -> tuple[list[float], list[float], list[float]]:
    mid, up, dn = [], [], []
    for i in range(len(x)):
        if i < n - 1:
            mid.append(NAN)
            up.append(NAN)
            dn.append(NAN)
            continue
        window = x[i - n + 1 : i + 1]
        mean = sum(window) / n
        std = (sum((v - mean) ** 2 for v in window) / n) ** 0.5
        mid.append(mean)
        up.append(mean + width * std)
        dn.append(mean - width * std)
    return mid, up, dn


# --- data -----------------------------------------------------------------------------------------


def make_bars(lengths: dict[str, int], seed: int = 5) -> pl.DataFrame:
    """Random-walk bars of several codes, sorted by code and datetime, with a flat stretch."""
    rng = np.random.default_rng(seed)
    parts = []
    for code, n in lengths.items():
        close = 10.0 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        flat = slice(5, 17) if n > 20 else slice(0, 0)
        close[flat] = close[5] if n > 20 else 0.0  # a flat stretch: zero range and zero changes
        spread = np.abs(rng.normal(0, 0.01, n)) * close
        high = np.maximum(close, np.roll(close, 1)) + spread
        low = np.minimum(close, np.roll(close, 1)) - spread
        high[flat], low[flat] = close[flat], close[flat]
        days = [dt.datetime(2020, 1, 1) + dt.timedelta(days=i) for i in range(n)]
        parts.append(
            pl.DataFrame(
                {"code": code, "datetime": days, "high": high, "low": low, "close": close}
            ).with_columns(pl.col("high", "low", "close").round(2))
        )
    return pl.concat(parts).with_columns(pl.col("datetime").cast(pl.Datetime("ms")))


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return make_bars({"SH600000": 80, "SZ000001": 50, "SZ300001": 3})


def per_code(frame: pl.DataFrame, expr: pl.Expr) -> dict[str, np.ndarray]:
    out = frame.with_columns(expr.alias("v"))
    return {
        str(code): g.get_column("v").fill_null(NAN).to_numpy()
        for (code,), g in out.partition_by("code", as_dict=True, maintain_order=True).items()
    }


def columns(frame: pl.DataFrame, code: str) -> tuple[list[float], list[float], list[float]]:
    one = frame.filter(pl.col("code") == code)
    return one["high"].to_list(), one["low"].to_list(), one["close"].to_list()


def check(actual: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=float), rtol=1e-10, atol=1e-10)


# --- hand-worked values -----------------------------------------------------------------------------


def test_hand_worked_values() -> None:
    frame = pl.DataFrame({"code": ["A"] * 3, "close": [3.0, 6.0, 9.0]})
    got = frame.select(
        sma("close", 3, 1).alias("sma"), ema("close", 3).alias("ema"), ma("close", 2).alias("ma")
    )
    # SMA(3,1): 3, (6 + 2*3)/3 = 4, (9 + 2*4)/3 = 17/3; EMA(3) (alpha 1/2): 3, 4.5, 6.75
    assert got["sma"].to_list() == pytest.approx([3.0, 4.0, 17.0 / 3.0])
    assert got["ema"].to_list() == pytest.approx([3.0, 4.5, 6.75])
    assert got["ma"].to_list() == [None, 4.5, 7.5]
    hl = pl.DataFrame({"code": ["A"] * 2, "high": [10.0, 12.0], "low": [8.0, 9.0], "close": [9.0, 11.0]})
    k = hl.select(**kdj(9, 3, 3))
    # RSV0 = (9 - 8) / (10 - 8) * 100 = 50 -> K0 = (50 + 100) / 3 = 50; RSV1 = (11 - 8) / 4 * 100 = 75
    assert k["k"].to_list() == pytest.approx([50.0, (75.0 + 100.0) / 3.0])
    assert k["d"].to_list() == pytest.approx([50.0, (175.0 / 3.0 + 100.0) / 3.0])
    tr = hl.select(true_range())
    assert tr.to_series().to_list() == pytest.approx([2.0, 3.0])  # max(3, |12-9|, |9-9|)


def test_macd_bar_is_twice_the_histogram() -> None:
    frame = pl.DataFrame({"code": ["A"] * 4, "close": [10.0, 11.0, 10.5, 12.0]})
    out = frame.select(**macd("close", 2, 3, 2))
    dif = np.array(ref_ema([10.0, 11.0, 10.5, 12.0], 2)) - np.array(ref_ema([10.0, 11.0, 10.5, 12.0], 3))
    dea = np.array(ref_ema(list(dif), 2))
    check(out["dif"].to_numpy(), list(dif))
    check(out["dea"].to_numpy(), list(dea))
    check(out["macd"].to_numpy(), list(2 * (dif - dea)))


# --- loop references, per code ------------------------------------------------------------------------


def test_moving_averages_match_loops(bars: pl.DataFrame) -> None:
    got_ma = per_code(bars, ma("close", 5))
    got_ema = per_code(bars, ema("close", 12))
    got_sma = per_code(bars, sma("close", 6, 2))
    for code in got_ma:
        _, _, close = columns(bars, code)
        check(got_ma[code], ref_ma(close, 5))
        check(got_ema[code], ref_ema(close, 12))
        check(got_sma[code], ref_weighted(close, 6, 2))


def test_kdj_rsi_boll_atr_match_loops(bars: pl.DataFrame) -> None:
    k, d, j = (per_code(bars, e) for e in kdj().values())
    r = per_code(bars, rsi("close", 6))
    mid, up, dn = (per_code(bars, e) for e in boll("close", 10, 2.0).values())
    wilder = per_code(bars, atr(14))
    simple = per_code(bars, atr(5, "ma"))
    for code in k:
        high, low, close = columns(bars, code)
        ks, ds, js = ref_kdj(high, low, close)
        check(k[code], ks)
        check(d[code], ds)
        check(j[code], js)
        check(r[code], ref_rsi(close, 6))
        bm, bu, bd = ref_boll(close, 10, 2.0)
        check(mid[code], bm)
        check(up[code], bu)
        check(dn[code], bd)
        tr = ref_true_range(high, low, close)
        check(wilder[code], ref_weighted(tr, 14, 1))
        check(simple[code], ref_ma(tr, 5))


def test_rsi_is_null_while_prices_do_not_move() -> None:
    frame = pl.DataFrame({"code": ["A"] * 4, "close": [5.0, 5.0, 5.0, 6.0]})
    assert frame.select(rsi("close", 3)).to_series().to_list() == [None, None, None, 100.0]


def test_windows_do_not_leak_across_codes(bars: pl.DataFrame) -> None:
    specs = ["MA(5)", "EMA(12)", "SMA(6,1)", "MACD", "KDJ", "RSI(6)", "BOLL(10,2)", "ATR(14)"]
    together = add_indicators(bars, specs)
    for code in ("SZ000001", "SZ300001"):
        alone = add_indicators(bars.filter(pl.col("code") == code), specs)
        assert together.filter(pl.col("code") == code).equals(alone)
    second = together.filter(pl.col("code") == "SZ000001")
    assert second["ma5"].head(4).null_count() == 4  # a fresh warm-up, not the previous code's tail
    assert second["kdj_k"][0] == pytest.approx((_first_rsv(bars, "SZ000001") + 100.0) / 3.0)


def _first_rsv(bars: pl.DataFrame, code: str) -> float:
    high, low, close = columns(bars, code)
    return (close[0] - low[0]) / (high[0] - low[0]) * 100.0


def test_interleaved_codes_are_grouped(bars: pl.DataFrame) -> None:
    shuffled = bars.sort("datetime", "code")  # codes interleaved, each still in time order
    out = add_indicators(shuffled, ["EMA(12)", "KDJ"]).sort("code", "datetime")
    assert out.equals(add_indicators(bars, ["EMA(12)", "KDJ"]))


# --- TA-Lib, where the definitions coincide -----------------------------------------------------------


def test_agrees_with_talib_after_warm_up() -> None:
    require(
        importlib.util.find_spec("talib") is not None, "TA-Lib is not installed (pip install -e '.[test]')"
    )
    import talib

    frame = make_bars({"SH600000": 600}, seed=9)
    high, low, close = (frame[c].to_numpy() for c in ("high", "low", "close"))
    out = add_indicators(frame, ["MA(20)", "EMA(12)", "MACD", "RSI(14)", "BOLL(20,2)", "ATR(14)"])
    tail = slice(300, None)  # EMA/Wilder seeds differ (first value vs first-n mean) and decay away

    def same(ours: str, theirs: np.ndarray, part: slice = tail) -> None:
        np.testing.assert_allclose(out[ours].to_numpy()[part], theirs[part], rtol=1e-7, atol=1e-9)

    same("ma20", talib.SMA(close, 20), slice(19, None))  # identical from the first full window
    same("ema12", talib.EMA(close, 12))
    dif, dea, hist = talib.MACD(close, 12, 26, 9)
    same("macd_dif", dif)
    same("macd_dea", dea)
    same("macd_macd", 2.0 * hist)  # the Chinese bar doubles TA-Lib's histogram
    same("rsi14", talib.RSI(close, 14))
    upper, middle, lower = talib.BBANDS(close, 20, 2.0, 2.0, 0)  # population std, like ours
    same("boll_mid", middle, slice(19, None))
    same("boll_upper", upper, slice(19, None))
    same("boll_lower", lower, slice(19, None))
    same("atr14", talib.ATR(high, low, close, 14))


# --- API ------------------------------------------------------------------------------------------


def test_spec_names_and_defaults() -> None:
    assert list(parse_spec("MA(20)")) == ["ma20"]
    assert list(parse_spec("sma(6, 1)")) == ["sma6_1"]
    assert list(parse_spec("MACD")) == ["macd_dif", "macd_dea", "macd_macd"]
    assert list(parse_spec("MACD(12,26,9)")) == ["macd_dif", "macd_dea", "macd_macd"]
    assert list(parse_spec("KDJ(5)")) == ["kdj5_3_3_k", "kdj5_3_3_d", "kdj5_3_3_j"]
    assert list(parse_spec("BOLL(10, 2.5)")) == ["boll10_2.5_mid", "boll10_2.5_upper", "boll10_2.5_lower"]
    assert list(parse_spec("ATR")) == ["atr14"]


def test_add_indicators_accepts_named_expressions(bars: pl.DataFrame) -> None:
    out = add_indicators(bars, {"fast": ema("close", 5), "slow": ma("close", 10)})
    assert out.columns[-2:] == ["fast", "slow"]
    assert out.height == bars.height


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("FOO(3)", "invalid indicator spec 'FOO\\(3\\)'"),
        ("MA(2.5)", "integer windows"),
        ("MA(1, 2)", "at most 1"),
        ("MA(x)", "must be numbers"),
        ("MA(0)", "positive integer"),
        ("MACD(26, 12)", "shorter"),
        ("SMA(3, 4)", "0 < m <= n"),
    ],
)
def test_bad_specs(bars: pl.DataFrame, spec: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        add_indicators(bars, [spec])


def test_bad_frames(bars: pl.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="sorted by datetime"):
        add_indicators(bars.reverse(), ["MA(5)"])
    with pytest.raises(InvalidInputError, match="already exist"):
        add_indicators(bars.with_columns(pl.lit(1.0).alias("ma5")), ["MA(5)"])
    with pytest.raises(InvalidInputError, match="'code'"):
        add_indicators(bars.drop("code"), ["MA(5)"])
    with pytest.raises(InvalidInputError, match="sequence of specs"):
        add_indicators(bars, "MA(5)")
    with pytest.raises(InvalidInputError, match="ATR method"):
        atr(14, "ema")  # type: ignore[arg-type]
