"""``hq system run`` on both stores: the trades, Hikyuu's performance statistics and the report written to
one directory, the same trades as the library's trading system, and clear refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
from cli_support import run_hq_here

from hikyuu_qlib.backtest.measures import GROUPS, MEASURES, Kind
from hikyuu_qlib.backtest.system import (
    CostModel,
    FixedCount,
    MACross,
    Slippage,
    StopLoss,
    TakeProfit,
    TradingSystem,
)
from hikyuu_qlib.domain import DateRange
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.stores.qlib import QlibStore

SPAN = ("--start", "2008-01-01", "--end", "2011-12-31")


def read_trades(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(path, try_parse_dates=True)
    return frame.with_columns(pl.col("entry_date", "exit_date").cast(pl.Datetime("ms")))


def test_system_run_writes_trades_performance_and_report(hikyuu_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_hq_here(
        "system", "run", "--source", f"hikyuu:{hikyuu_dir}", "--codes", "SH600000,SZ000001", *SPAN,
        "--signal", "ma-cross:5,20", "--mm", "fixed-count:1000", "--stop-loss", "0.08", "--take-profit", "0.2",
        "--slippage", "0.001", "--cost", "a-share", "--out", str(out), "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert {p.name for p in out.iterdir()} >= {
        "report.html",
        "trades.csv",
        "statistics.json",
        "daily.parquet",
    }
    system = TradingSystem(
        MACross(5, 20), FixedCount(1000), stop_loss=StopLoss(0.08), take_profit=TakeProfit(0.2),
        slippage=Slippage(0.001), cost=CostModel.fixed_a(),
    )  # fmt: skip
    expected = system.run(HikyuuStore.open(hikyuu_dir), ["SH600000", "SZ000001"], DateRange.of(*SPAN[1::2]))
    trades = read_trades(out / "trades.csv")
    assert trades.height == doc["closed_trades"] == expected.trades.height > 10
    assert np.allclose(trades["pnl"].to_numpy(), expected.trades["pnl"].to_numpy())
    assert set(trades["reason"]) >= {"signal", "stop_loss"}
    saved = json.loads((out / "statistics.json").read_text())
    assert saved == doc["statistics"]  # the one document, NaN written as null in both
    perf = doc["statistics"]["performance"]
    assert set(doc["statistics"]) <= set(GROUPS) and set(perf) <= set(MEASURES)  # one name, one definition
    counts = [n for n in perf if MEASURES[n].kind is Kind.COUNT]
    assert counts and all(isinstance(perf[n], int) for n in counts)
    # Hikyuu's Performance figures by hand, from the trades written
    pnl = trades["pnl"].to_list()
    wins = [p for p in pnl if p > 0]
    losses = [p for p in pnl if p <= 0]
    assert perf["winning_trades"] == len(wins) and perf["losing_trades"] == len(losses)
    assert math.isclose(perf["gross_profit"], sum(wins)) and math.isclose(perf["gross_loss"], sum(losses))
    assert math.isclose(perf["max_win"], max(wins)) and math.isclose(perf["max_loss"], min(losses))
    assert math.isclose(perf["expectancy"], sum(pnl) / len(pnl))
    assert math.isclose(perf["win_loss_ratio"], (sum(wins) / len(wins)) / abs(sum(losses) / len(losses)))
    assert math.isclose(perf["closed_cost"], trades["cost"].sum())
    risk = [e * 0.08 * s for e, s in zip(trades["entry_price"], trades["shares"], strict=True)]
    assert math.isclose(perf["r_expectancy"], sum(p / r for p, r in zip(pnl, risk, strict=True)) / len(pnl))
    daily = pl.read_parquet(out / "daily.parquet")
    assert perf["idle_days"] == (daily["holdings"] == 0).sum()
    assert math.isclose(perf["cash"], daily["cash"][-1]) and math.isclose(
        perf["market_value"], daily["stock_value"][-1]
    )
    # the account figures: total assets, the return on the invested cash, the cash each buy took
    assert math.isclose(perf["total_assets"], perf["cash"] + perf["market_value"])
    assert math.isclose(perf["total_assets"], doc["statistics"]["portfolio"]["final_account"])
    assert math.isclose(perf["account_return"], perf["total_assets"] / perf["invested_cash"] - 1.0)
    assert math.isclose(perf["closed_return"], sum(pnl) / 100_000.0)
    assert perf["max_cash_share"] >= max(trades["cash_share"]) and 0.0 < perf["mean_cash_share"] < 1.0
    if doc["open_positions"] == 0:
        assert math.isclose(perf["max_cash_share"], max(trades["cash_share"]))
        assert math.isclose(perf["mean_cash_share"], trades["cash_share"].mean())  # type: ignore[arg-type]
    page = (out / "report.html").read_text()
    assert "max_consecutive_win_amount" in page and "赢利交易数" in page  # the figure and its Hikyuu name
    assert "max_cash_share" in page and "单笔交易最大占用现金比例" in page


def test_an_expression_signal_trades_as_the_ma_cross(hikyuu_dir: Path, tmp_path: Path) -> None:
    runs = {}
    for name, spec in (("ma", "ma-cross:5,20"), ("expr", "expr:CROSS(MA(5), MA(20)) ; CROSS(MA(20), MA(5))")):
        proc = run_hq_here(
            "system", "run", "--source", f"hikyuu:{hikyuu_dir}", "--codes", "SH600000,SH600004", *SPAN,
            "--signal", spec, "--mm", "fixed-percent:0.4", "--out", str(tmp_path / name), "--format", "json",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[name] = read_trades(tmp_path / name / "trades.csv")
    assert runs["ma"].height > 5 and runs["ma"].equals(runs["expr"])
    proc = run_hq_here(
        "system", "run", "--source", f"hikyuu:{hikyuu_dir}", "--codes", "SH600000", *SPAN,
        "--signal", "expr:close > MA(20) and REF(close, 1) < 10 ; close < LLV(low, 10) * 1.01",
        "--out", str(tmp_path / "e2"), "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["closed_trades"] > 0


def test_predictions_drive_the_system_on_the_qlib_store(qlib_dir: Path, tmp_path: Path) -> None:
    codes = ["SH600000", "SH600036", "SH601318", "SZ000001", "SZ000002", "SZ000333", "SH600519", "SH601166"]
    store = QlibStore.open(qlib_dir)
    close = store.features(codes, ["$close"], DateRange.of("2019-10-01", "2020-06-30"))
    reversal = -(pl.col("close") / pl.col("close").shift(5).over("code") - 1)
    preds = (
        close.with_columns(reversal.alias("score")).drop_nulls("score").select("datetime", "code", "score")
    )
    preds.filter(pl.col("datetime") >= pl.datetime(2020, 1, 1)).write_parquet(tmp_path / "preds.parquet")
    instruments = tmp_path / "mine.txt"
    instruments.write_text("".join(f"{c}\t2010-01-04\t2026-05-08\n" for c in codes))
    signals = tmp_path / "signals.parquet"
    made = run_hq_here("signals", str(tmp_path / "preds.parquet"), "--k", "3", "--out", str(signals))
    assert made.returncode == 0, made.stderr[-2000:]
    out = tmp_path / "run"
    proc = run_hq_here(
        "system", "run", "--source", f"qlib:{qlib_dir}", "--universe-file", str(instruments),
        "--start", "2020-01-01", "--end", "2020-06-30", "--signal", f"predictions:{tmp_path / 'preds.parquet'}",
        "--method", "topk", "--k", "3", "--mm", "fixed-percent:0.3", "--cost", "none", "--benchmark", "SH000300",
        "--out", str(out), "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert sorted(doc["codes"]) == sorted(codes) and doc["statistics"]["benchmark"]["code"] == "SH000300"
    trades = read_trades(out / "trades.csv")
    assert trades.height > 5
    # every entry follows a BUY of its code and every signal exit a SELL (the latest non-HOLD before it)
    moves = pl.read_parquet(signals).filter(pl.col("signal") != "HOLD").sort("datetime")
    for code, entry, exit_, reason in trades.select("code", "entry_date", "exit_date", "reason").iter_rows():
        before = moves.filter((pl.col("code") == code) & (pl.col("datetime") < entry))
        assert before["signal"][-1] == "BUY", (code, entry)
        if reason == "signal":
            before = moves.filter((pl.col("code") == code) & (pl.col("datetime") < exit_))
            assert before["signal"][-1] == "SELL", (code, exit_)
    # the signals file itself drives the same run
    again = run_hq_here(
        "system", "run", "--source", f"qlib:{qlib_dir}", "--universe-file", str(instruments),
        "--start", "2020-01-01", "--end", "2020-06-30", "--signal", f"signals:{signals}",
        "--mm", "fixed-percent:0.3", "--cost", "none", "--out", str(tmp_path / "again"), "--format", "json",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert read_trades(tmp_path / "again" / "trades.csv").equals(trades)


def test_bad_system_options_are_refused_before_any_work(hikyuu_dir: Path, tmp_path: Path) -> None:
    base = (
        "system",
        "run",
        "--source",
        f"hikyuu:{hikyuu_dir}",
        "--out",
        str(tmp_path / "x"),
        "--format",
        "json",
    )
    cases = [
        (("--codes", "SH600000", "--universe", "all", "--signal", "ma-cross:5,20"), "mutually exclusive"),
        (("--codes", "SH600000", "--signal", "ma-cross:20"), "two whole windows"),
        (("--codes", "SH600000", "--signal", "rsi:14"), "unknown kind"),
        (("--codes", "SH600000", "--signal", "expr:close > MA(5)"), "BUY ; SELL"),
        (("--codes", "SH600000", "--signal", "expr:__import__('os') ; close < 1"), "unknown function"),
        (("--codes", "SH600000", "--signal", "expr:close.__class__ ; close < 1"), "not supported"),
        (("--codes", "SH600000", "--signal", "ma-cross:5,20", "--mm", "fixed-risk:1000"), "stop_loss"),
        (("--codes", "SH600000", "--signal", "ma-cross:5,20", "--mm", "kelly:1"), "unknown money manager"),
        (("--codes", "SH600000", "--signal", "ma-cross:5,20", "--cost", "free"), "--cost"),
        (("--signal", "ma-cross:5,20"), "--codes"),
    ]
    for args, words in cases:
        proc = run_hq_here(*base, *args)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert words in json.loads(proc.stdout)["error"]["message"], args
    assert not (tmp_path / "x").exists()
