"""The Hikyuu-style trading system on the real Hikyuu store, checked against hand computations.

Expected trades are derived in the tests from the raw bars with plain loops (independent of the
library's polars signals and numba kernel), and a few are pinned to the literal prices in the data.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hikyuu_qlib.backtest.system import (
    CostModel,
    ExprSignal,
    FixedCount,
    FixedPercent,
    FixedRisk,
    MACross,
    ScoreThreshold,
    Slippage,
    StopLoss,
    TakeProfit,
    TradingSystem,
)
from hikyuu_qlib.domain import DateRange, InvalidInputError, NoBarsError, StockCode, UnknownCodeError
from hikyuu_qlib.stores.hikyuu import HikyuuStore

D = dt.datetime
CODE = "SH600000"
Y2010_2011 = DateRange.of("2010-01-01", "2011-12-31")


@pytest.fixture(scope="module")
def store(hikyuu_dir: Path) -> HikyuuStore:
    return HikyuuStore.open(hikyuu_dir)


@pytest.fixture(scope="module")
def bars(store: HikyuuStore) -> pl.DataFrame:
    return store.read_bars(StockCode.parse(CODE), dates=Y2010_2011)


def _bar(bars: pl.DataFrame, day: dt.datetime) -> dict[str, float]:
    row = bars.filter(pl.col("datetime") == day)
    assert row.height == 1, f"no bar on {day:%Y-%m-%d}"
    return row.row(0, named=True)


def _loop_cross_trades(
    bars: pl.DataFrame, fast: int, slow: int, stop: float = 0.0
) -> list[tuple[dt.datetime, float, dt.datetime, float]]:
    """MA cross by hand: decide on bar i's close, fill at bar i + 1's open, one position at a time;
    with ``stop`` > 0 a close at or below entry × (1 − stop) also exits."""
    close = bars["close"].to_list()
    opens = bars["open"].to_list()
    days = bars["datetime"].to_list()

    def mean(i: int, n: int) -> float | None:
        return sum(close[i - n + 1 : i + 1]) / n if i >= n - 1 else None

    out = []
    holding: tuple[dt.datetime, float] | None = None
    for i in range(1, len(close) - 1):
        f0, s0, f1, s1 = mean(i - 1, fast), mean(i - 1, slow), mean(i, fast), mean(i, slow)
        crossed_up = None not in (f0, s0, f1, s1) and f0 < s0 and f1 > s1  # type: ignore[operator]
        crossed_down = None not in (f0, s0, f1, s1) and f0 > s0 and f1 < s1  # type: ignore[operator]
        if holding is None and crossed_up:
            holding = (days[i + 1], opens[i + 1])
        elif holding is not None and (crossed_down or (stop > 0 and close[i] <= holding[1] * (1 - stop))):
            out.append((holding[0], holding[1], days[i + 1], opens[i + 1]))
            holding = None
    return out


def _fixed_a(amount: float, *, sell: bool) -> float:
    return max(amount * 0.0018, 5.0) + (amount * 0.001 if sell else 0.0)


def test_ma_cross_fixed_count_matches_hand_computed_trades(store: HikyuuStore, bars: pl.DataFrame) -> None:
    result = TradingSystem(MACross(5, 20), FixedCount(1000)).run(store, CODE, Y2010_2011)
    expected = _loop_cross_trades(bars, 5, 20)
    trades = result.trades
    assert len(expected) >= 10
    assert trades.select("entry_date", "entry_price", "exit_date", "exit_price").rows() == expected
    assert trades["shares"].to_list() == [1000.0] * len(expected)
    costs = [_fixed_a(e * 1000, sell=False) + _fixed_a(x * 1000, sell=True) for _, e, _, x in expected]
    assert trades["cost"].to_list() == pytest.approx(costs)
    pnl = [(x - e) * 1000 - c for (_, e, _, x), c in zip(expected, costs, strict=True)]
    assert trades["pnl"].to_list() == pytest.approx(pnl)
    assert set(trades["reason"]) == {"signal"}
    # pinned by reading the data: MA5 crosses MA20 on 2010-02-25; the stock is suspended until 2010-03-11,
    # so the buy fills at that bar's open, 21.00; the death cross on 2010-04-19 sells at the next open 20.55
    first = trades.row(0, named=True)
    assert (first["entry_date"], first["entry_price"]) == (D(2010, 3, 11), _bar(bars, D(2010, 3, 11))["open"])
    assert first["entry_price"] == pytest.approx(21.00)
    assert (first["exit_date"], first["exit_price"]) == (D(2010, 4, 20), pytest.approx(20.55))
    # 21000 × 0.0018 = 37.80 buy; 20550 × 0.0018 = 36.99 commission + 20.55 stamp tax on the sell
    assert first["cost"] == pytest.approx(37.80 + 36.99 + 20.55)
    # the account: flat at the end, so cash = initial cash + realised pnl
    daily = result.daily
    assert result.positions.height == 0
    assert daily["cash"][-1] == pytest.approx(100_000.0 + sum(pnl))
    held = daily.filter(pl.col("datetime") == D(2010, 3, 11)).row(0, named=True)
    assert held["stock_value"] == pytest.approx(1000 * _bar(bars, D(2010, 3, 11))["close"])
    assert held["holdings"] == 1
    assert held["cash"] == pytest.approx(100_000.0 - 21_000.0 - 37.80)
    assert held["turnover"] == pytest.approx(21_000.0 / 100_000.0)
    prev = pl.concat([pl.Series([100_000.0]), daily["account"][:-1]])
    net = (daily["account"] / prev - 1.0).to_numpy()
    assert (daily["return"] - daily["cost"]).to_numpy() == pytest.approx(net)


def test_trade_statistics_of_the_round_trips(store: HikyuuStore) -> None:
    result = TradingSystem(MACross(5, 20), FixedCount(1000)).run(store, CODE, Y2010_2011)
    pnl = result.trades["pnl"].to_list()
    stats = result.trade_statistics()
    wins = [p for p in pnl if p > 0]
    losses = [p for p in pnl if p <= 0]
    assert stats["trades"] == len(pnl) == 14
    assert stats["win_rate"] == pytest.approx(len(wins) / len(pnl))
    assert stats["avg_win"] == pytest.approx(sum(wins) / len(wins))
    assert stats["avg_loss"] == pytest.approx(sum(losses) / len(losses))
    # by hand from the table of trades: the 4th to 7th trades all lose
    assert stats["max_consecutive_losses"] >= 4
    spans = zip(result.trades["entry_date"], result.trades["exit_date"], strict=True)
    days = [(x - e).days for e, x in spans]
    assert stats["avg_holding_days"] == pytest.approx(sum(days) / len(days))
    invested = [e * 1000 for e in result.trades["entry_price"]]
    returns = [p / i for p, i in zip(pnl, invested, strict=True)]
    assert stats["avg_return"] == pytest.approx(sum(returns) / len(pnl))
    summary = result.statistics()
    assert "excess_return_with_cost" not in summary  # no benchmark given
    assert summary["portfolio"]["final_account"] == pytest.approx(100_000.0 + sum(pnl))
    assert summary["portfolio"]["realised_pnl"] == pytest.approx(sum(pnl))
    assert summary["portfolio"]["total_return"] == pytest.approx(sum(pnl) / 100_000.0)
    system = TradingSystem(MACross(5, 20), FixedCount(1000))
    with_bench = system.run(store, CODE, Y2010_2011, benchmark="SH000001")
    assert "excess_return_with_cost" in with_bench.statistics()


def test_minimum_commission_of_five_yuan(store: HikyuuStore) -> None:
    trades = TradingSystem(MACross(5, 20), FixedCount(100)).run(store, CODE, Y2010_2011).trades
    first = trades.row(0, named=True)
    # 2100 yuan × 0.0018 = 3.78 < 5 on each side; the stamp tax 2.055 has no minimum
    assert first["cost"] == pytest.approx(5.0 + 5.0 + 20.55 * 100 * 0.001)


def test_shanghai_transfer_fee(store: HikyuuStore) -> None:
    system = TradingSystem(MACross(5, 20), FixedCount(1000), cost=CostModel.fixed_a())
    first = system.run(store, CODE, Y2010_2011).trades.row(0, named=True)
    # 1000 shares × 0.001 = 1 yuan per side (minimum 1) on top of TC_FixedA commission and stamp tax
    assert first["cost"] == pytest.approx(37.80 + 36.99 + 20.55 + 2 * 1.0)
    sz = system.run(store, "SZ000001", Y2010_2011).trades.row(0, named=True)
    amount_in, amount_out = sz["entry_price"] * 1000, sz["exit_price"] * 1000
    assert sz["cost"] == pytest.approx(_fixed_a(amount_in, sell=False) + _fixed_a(amount_out, sell=True))


def test_stop_loss_fires_on_the_first_close_below_the_stop(store: HikyuuStore, bars: pl.DataFrame) -> None:
    result = TradingSystem(MACross(5, 20), FixedCount(1000), stop_loss=StopLoss(0.03)).run(
        store, CODE, Y2010_2011
    )
    expected = _loop_cross_trades(bars, 5, 20, stop=0.03)
    assert result.trades.select("entry_date", "entry_price", "exit_date", "exit_price").rows() == expected
    stops = result.trades.filter(pl.col("reason") == "stop_loss")
    assert stops.height == 2
    # by hand: bought 2011-01-10 at 13.11, stop 12.7167; the close of 2011-01-17 is the first at or
    # below it, so the stop sells at the open of 2011-01-18 (the death cross came later)
    tr = stops.row(0, named=True)
    assert (tr["entry_date"], tr["entry_price"]) == (D(2011, 1, 10), pytest.approx(13.11))
    assert _bar(bars, D(2011, 1, 14))["close"] > 13.11 * 0.97 >= _bar(bars, D(2011, 1, 17))["close"]
    assert (tr["exit_date"], tr["exit_price"]) == (D(2011, 1, 18), _bar(bars, D(2011, 1, 18))["open"])
    plain = TradingSystem(MACross(5, 20), FixedCount(1000)).run(store, CODE, Y2010_2011).trades
    assert plain.filter(pl.col("entry_date") == D(2011, 1, 10))["exit_date"].item() > D(2011, 1, 18)


def test_take_profit_exits_once_the_close_reaches_the_goal(store: HikyuuStore, bars: pl.DataFrame) -> None:
    result = TradingSystem(MACross(5, 20), FixedCount(1000), take_profit=TakeProfit(0.02)).run(
        store, CODE, Y2010_2011
    )
    hits = result.trades.filter(pl.col("reason") == "take_profit")
    assert hits.height >= 1
    days, closes = bars["datetime"].to_list(), bars["close"].to_list()
    for tr in hits.iter_rows(named=True):
        i = days.index(tr["entry_date"])
        while closes[i] < tr["entry_price"] * 1.02:
            i += 1
        assert tr["exit_date"] == days[i + 1]


def test_fixed_percent_rounds_down_to_whole_lots(store: HikyuuStore) -> None:
    system = TradingSystem(MACross(5, 20), FixedPercent(0.5), init_cash=100_000.0)
    result = system.run(store, CODE, Y2010_2011)
    first = result.trades.row(0, named=True)
    # 50 000 yuan / (21.00 × 100 shares a lot) = 23.8 lots → 23 lots
    assert first["shares"] == 2300.0
    assert all(s % 100 == 0 for s in result.trades["shares"])
    lot = store.stocks().filter(pl.col("code") == CODE)["lot"].item()
    assert lot == 100


def test_fixed_risk_sizes_from_the_stop_distance(store: HikyuuStore) -> None:
    system = TradingSystem(MACross(5, 20), FixedRisk(2000.0), stop_loss=StopLoss(0.05))
    first = system.run(store, CODE, Y2010_2011).trades.row(0, named=True)
    # 2000 yuan / (21.00 × 0.05 a share) = 1904.8 shares → 1900
    assert first["shares"] == 1900.0
    with pytest.raises(InvalidInputError, match="stop_loss"):
        TradingSystem(MACross(5, 20), FixedRisk(2000.0))


def test_slippage_and_fill_at_close(store: HikyuuStore, bars: pl.DataFrame) -> None:
    slipped = (
        TradingSystem(MACross(5, 20), FixedCount(1000), slippage=Slippage(0.01))
        .run(store, CODE, Y2010_2011)
        .trades.row(0, named=True)
    )
    assert slipped["entry_price"] == pytest.approx(21.00 * 1.01)
    assert slipped["exit_price"] == pytest.approx(20.55 * 0.99)
    at_close = (
        TradingSystem(MACross(5, 20), FixedCount(1000), fill="close")
        .run(store, CODE, Y2010_2011)
        .trades.row(0, named=True)
    )
    assert (at_close["entry_date"], at_close["entry_price"]) == (D(2010, 2, 25), pytest.approx(20.74))
    assert (at_close["exit_date"], at_close["exit_price"]) == (D(2010, 4, 19), pytest.approx(20.56))


def test_ex_date_pays_gift_shares_and_bonus(store: HikyuuStore) -> None:
    # SH600000 ex-date 2010-06-10: 3 gift shares and 1.5 yuan per 10 held
    day = pl.col("datetime")
    signal = ExprSignal(buy=day == D(2010, 6, 1), sell=day == D(2010, 6, 11))
    result = TradingSystem(signal, FixedCount(1000)).run(store, CODE, Y2010_2011)
    tr = result.trades.row(0, named=True)
    assert (tr["entry_date"], tr["entry_price"]) == (D(2010, 6, 2), pytest.approx(18.38))
    assert (tr["exit_date"], tr["exit_price"]) == (D(2010, 6, 17), pytest.approx(13.91))
    assert tr["shares"] == 1300.0
    assert tr["income"] == pytest.approx(150.0)
    cost = _fixed_a(18380.0, sell=False) + _fixed_a(13.91 * 1300, sell=True)
    assert tr["pnl"] == pytest.approx(13.91 * 1300 - 18380.0 + 150.0 - cost)
    # the shared round-trip statistics see the same trip: bonus and gift shares included
    stats = result.trade_statistics()
    assert stats["trades"] == 1.0
    assert stats["avg_return"] == pytest.approx(tr["pnl"] / 18380.0)


def test_one_price_bar_defers_the_fill(store: HikyuuStore) -> None:
    # 2006-04-04 is a one-price bar (high = low = 10.86): a buy decided the day before waits a bar
    dates = DateRange.of("2006-03-01", "2006-05-31")
    b = store.read_bars(StockCode.parse(CODE), dates=dates)
    days = b["datetime"].to_list()
    i = days.index(D(2006, 4, 4))
    signal = ExprSignal(buy=pl.col("datetime") == days[i - 1], sell=pl.col("datetime") == days[i + 5])
    tr = TradingSystem(signal, FixedCount(1000)).run(store, CODE, dates).trades.row(0, named=True)
    assert tr["entry_date"] == days[i + 1]
    assert tr["entry_price"] == b["open"][i + 1]


def test_score_threshold_and_shared_cash_across_codes(store: HikyuuStore) -> None:
    codes = ["SH600000", "SZ000001", "SZ000002"]
    frames = [store.read_bars(StockCode.parse(c), dates=Y2010_2011) for c in codes]
    preds = pl.concat(frames).select(
        "datetime",
        pl.col("code").alias("instrument"),
        (pl.col("close") / pl.col("close").shift(5).over("code") - 1.0).alias("score"),
    )
    system = TradingSystem(ScoreThreshold(preds, buy_above=0.05, sell_below=-0.02), FixedCount(500))
    many = system.run(store, codes, Y2010_2011, benchmark="SH000001")
    # with cash to spare, each code trades exactly as it does alone
    for code in codes:
        alone = system.run(store, code, Y2010_2011).trades
        # the same trades; only the share of the (shared) cash each buy took differs
        assert many.trades_of(code).drop("cash_share").equals(alone.drop("cash_share"))
        assert alone.height > 0
    # the first buy of SZ000001: the first bar with a 5-day return above 5 %, filled at the next open
    sz = frames[1]
    r5 = (sz["close"] / sz["close"].shift(5) - 1.0).to_list()
    i = next(k for k, v in enumerate(r5) if v is not None and v > 0.05)
    first = many.trades_of("SZ000001").row(0, named=True)
    assert (first["entry_date"], first["entry_price"]) == (sz["datetime"][i + 1], sz["open"][i + 1])
    # benchmark returns are the index's close-to-close changes
    idx = store.read_bars(StockCode.parse("SH000001"), dates=Y2010_2011)
    bench = idx.select("datetime", (pl.col("close") / pl.col("close").shift(1) - 1).alias("b"))
    joined = many.daily.join(bench, on="datetime").drop_nulls("b")
    assert joined.height > 400
    assert np.allclose(joined["bench_return"].to_numpy(), joined["b"].to_numpy())


def test_shared_cash_limits_buys(store: HikyuuStore) -> None:
    codes = ["SH600000", "SZ000001", "SZ000002"]
    system = TradingSystem(MACross(5, 20), FixedPercent(1.0), init_cash=50_000.0)
    result = system.run(store, codes, Y2010_2011)
    assert result.daily["cash"].min() >= -1e-6
    # all-in sizing: every buy takes as many lots as the cash allows, so the cash left at the end of an
    # entry day cannot pay for one more lot (plus its commission) of any code bought that day
    trades = result.trades
    assert trades.height >= 5
    ends = trades.join(result.daily.select("datetime", "cash"), left_on="entry_date", right_on="datetime")
    one_more = ends["entry_price"] * 100
    assert (ends["cash"] < one_more + (one_more * 0.0018).clip(lower_bound=5.0)).all()
    assert (trades["shares"] % 100 == 0).all()
    # the account is the cash plus the open positions at their last close
    held = float(result.positions.select((pl.col("last_close") * pl.col("shares")).sum()).item())
    assert math.isclose(result.daily["account"][-1], result.daily["cash"][-1] + held, rel_tol=1e-12)
    assert trades.height >= 5


def test_bad_input_is_rejected_with_specific_errors(store: HikyuuStore) -> None:
    with pytest.raises(InvalidInputError, match="fast"):
        MACross(20, 5)
    with pytest.raises(InvalidInputError, match="StopLoss"):
        StopLoss(1.5)
    with pytest.raises(InvalidInputError, match="FixedCount"):
        FixedCount(0)
    with pytest.raises(InvalidInputError, match="predictions frame lacks"):
        ScoreThreshold(pl.DataFrame({"datetime": [D(2010, 1, 4)]}), buy_above=0.1, sell_below=0.0)
    with pytest.raises(NoBarsError, match="SH600001"):  # listed in stock.db, no table: no bars to trade
        TradingSystem(MACross(5, 20), FixedCount(100)).run(store, "SH600001", Y2010_2011)
    with pytest.raises(UnknownCodeError, match="SH609999"):
        TradingSystem(MACross(5, 20), FixedCount(100)).run(store, "SH609999", Y2010_2011)
    with pytest.raises(InvalidInputError, match="duplicate"):
        TradingSystem(MACross(5, 20), FixedCount(100)).run(store, [CODE, "sh600000"], Y2010_2011)


def test_open_position_at_the_end(store: HikyuuStore, bars: pl.DataFrame) -> None:
    signal = ExprSignal(buy=pl.col("datetime") == D(2011, 11, 1), sell=pl.lit(False))
    result = TradingSystem(signal, FixedCount(1000), stop_loss=StopLoss(0.5)).run(store, CODE, Y2010_2011)
    assert result.trades.height == 0
    pos = result.positions.row(0, named=True)
    entry = _bar(bars, D(2011, 11, 2))["open"]
    assert (pos["code"], pos["entry_date"], pos["entry_price"]) == (CODE, D(2011, 11, 2), entry)
    assert pos["stop_price"] == pytest.approx(entry * 0.5) and pos["target_price"] is None
    assert pos["last_close"] == bars["close"][-1]
    last = result.daily.row(-1, named=True)
    assert last["stock_value"] == pytest.approx(1000 * bars["close"][-1])
    assert last["cash"] == pytest.approx(100_000.0 - 1000 * entry - max(1000 * entry * 0.0018, 5.0))


def test_fixed_percent_with_a_stop_risks_that_part_of_the_cash(store: HikyuuStore) -> None:
    """Hikyuu's MM_FixedPercent: cash × p / (entry − stop price) shares, so with a stop it risks p of
    the cash (the whole price is the risk without one, see the test above)."""
    system = TradingSystem(MACross(5, 20), FixedPercent(0.02), stop_loss=StopLoss(0.05), init_cash=100_000.0)
    first = system.run(store, CODE, Y2010_2011).trades.row(0, named=True)
    # 100 000 yuan × 0.02 / (21.00 × 0.05 a share) = 1904.8 shares → 1900
    assert first["entry_price"] == pytest.approx(21.00) and first["shares"] == 1900.0


def test_cash_use_and_account_figures_by_hand(store: HikyuuStore, bars: pl.DataFrame) -> None:
    """Hikyuu's Performance account figures: a buy's cash share is (amount + costs) / the cash just
    before it (单笔交易最大/交易平均占用现金比例); the account return is total assets / invested cash − 1."""
    result = TradingSystem(MACross(5, 20), FixedCount(1000)).run(store, CODE, Y2010_2011)
    trades = result.trades
    expected = _loop_cross_trades(bars, 5, 20)
    assert len(expected) == trades.height == 14 and result.positions.height == 0
    # one code, one position at a time: the cash before the k-th buy is the initial cash plus the
    # profits of the k − 1 trips closed before it
    pnl = trades["pnl"].to_list()
    cash_before = [100_000.0 + sum(pnl[:k]) for k in range(len(pnl))]
    spent = [e * 1000 + _fixed_a(e * 1000, sell=False) for _, e, _, _ in expected]
    shares = [s / c for s, c in zip(spent, cash_before, strict=True)]
    assert trades["cash_share"].to_list() == pytest.approx(shares)
    # pinned: the first buy, 1000 × 21.00 + 37.80 commission out of 100 000 yuan
    assert trades["cash_share"][0] == pytest.approx(21_037.80 / 100_000.0)
    perf = result.statistics()["performance"]
    assert perf["max_cash_share"] == pytest.approx(max(shares))
    assert perf["mean_cash_share"] == pytest.approx(sum(shares) / len(shares))
    assert perf["invested_cash"] == 100_000.0
    assert perf["invested_assets"] == perf["borrowed_cash"] == perf["borrowed_assets"] == 0.0
    assert perf["cash"] == pytest.approx(100_000.0 + sum(pnl)) and perf["market_value"] == 0.0
    assert perf["total_assets"] == pytest.approx(100_000.0 + sum(pnl))
    assert perf["account_return"] == pytest.approx(sum(pnl) / 100_000.0)
    assert perf["closed_return"] == pytest.approx(sum(pnl) / 100_000.0)  # flat at the end: the same
    days = (result.daily["datetime"][-1] - result.daily["datetime"][0]).days + 1
    growth = (100_000.0 + sum(pnl)) / 100_000.0
    assert perf["cagr_calendar"] == pytest.approx(growth ** (365.0 / days) - 1.0)
    assert perf["annual_return_calendar"] == pytest.approx((growth - 1.0) / (days / 365.0))


def test_cash_use_of_an_open_position_and_of_all_in_buys(store: HikyuuStore, bars: pl.DataFrame) -> None:
    signal = ExprSignal(buy=pl.col("datetime") == D(2011, 11, 1), sell=pl.lit(False))
    result = TradingSystem(signal, FixedCount(1000)).run(store, CODE, Y2010_2011)
    entry, last = _bar(bars, D(2011, 11, 2))["open"], bars["close"][-1]
    spent = 1000 * entry + _fixed_a(1000 * entry, sell=False)
    assert result.positions["cash_share"].to_list() == pytest.approx([spent / 100_000.0])
    perf = result.statistics()["performance"]
    # the open position's buy is a buy: it counts in the cash shares, as in Hikyuu's trade list
    assert perf["max_cash_share"] == perf["mean_cash_share"] == pytest.approx(spent / 100_000.0)
    assert perf["total_assets"] == pytest.approx(100_000.0 - spent + 1000 * last)
    assert perf["account_return"] == pytest.approx((100_000.0 - spent + 1000 * last) / 100_000.0 - 1.0)
    assert perf["closed_return"] == 0.0  # nothing closed
    # all-in sizing: each buy takes all the cash it can in whole lots, so its share is below 1 by less
    # than one lot (and its commission) over the cash
    allin = TradingSystem(MACross(5, 20), FixedPercent(1.0), init_cash=50_000.0).run(store, CODE, Y2010_2011)
    trades = allin.trades
    pnl = trades["pnl"].to_list()
    cash_before = [50_000.0 + sum(pnl[:k]) for k in range(len(pnl))]
    for share, price, cash in zip(trades["cash_share"], trades["entry_price"], cash_before, strict=True):
        lot = 100 * price
        assert 1.0 - (lot + max(lot * 0.0018, 5.0)) / cash < share <= 1.0
    assert allin.statistics()["performance"]["max_cash_share"] == pytest.approx(max(trades["cash_share"]))
