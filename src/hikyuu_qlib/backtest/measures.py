"""The statistics of a backtest: each one's name, kind and definition, and the one document built from them.

Every figure the platform shows about a backtest is defined here once, by name. The CLI summaries
(``hq backtest run``, ``hq run``, ``hq demo``), ``metrics.json`` and ``report.html`` all render the
document of :func:`statistics_document`; none of them computes a figure of its own, and the report
prints :data:`MEASURES`' definitions next to the figures. :mod:`.formats` prints each by its kind.

Where Qlib and common usage give two definitions, both are kept under distinct names: returns added
up day by day (Qlib's ``sum`` mode: ``annualized_return_sum``, ``max_drawdown_sum``) against returns
compounded (``cagr``, ``max_drawdown_compound``). A year has 238 trading days, as in Qlib.

The document is ``{group: {name: value}}`` (``benchmark`` is ``None`` when the backtest has none; the
excess-return groups then do not exist). Each group measures one daily return series
(:data:`GROUPS`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import polars as pl

from hikyuu_qlib.backtest.stats import risk_analysis, risk_free_daily, scaler, sharpe, trade_statistics
from hikyuu_qlib.domain import InvalidInputError


class Kind(StrEnum):
    """How a figure is printed (see :mod:`hikyuu_qlib.backtest.formats`)."""

    RATIO = "ratio"  # a fraction, printed as a percentage
    MONEY = "money"  # yuan
    COUNT = "count"  # a whole number
    NUMBER = "number"  # a plain number (a ratio of ratios, a correlation), optionally with a unit
    DATE = "date"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Measure:
    """One statistic: its name (the same in the CLI, JSON and the report), kind and definition."""

    name: str
    kind: Kind
    definition: str
    unit: str = ""


_N = "238"
_LIST = (
    Measure("trading_days", Kind.COUNT, "trading days of the backtest"),
    Measure(
        "total_return",
        Kind.RATIO,
        "the compounded return over the backtest: ∏(1 + r) − 1 of the "
        "daily returns r; for the portfolio, final_account / initial_cash − 1",
    ),
    Measure(
        "cagr",
        Kind.RATIO,
        f"compound annual growth rate: (1 + total_return)^({_N} / trading_days) − 1 "
        "(Qlib's annualized_return in product mode)",
    ),
    Measure(
        "annualized_return_sum",
        Kind.RATIO,
        f"the mean daily return × {_N}: Qlib's annualized_return "
        "(sum mode, daily returns added up, not compounded)",
    ),
    Measure(
        "max_drawdown_compound",
        Kind.RATIO,
        "the largest fall of the compounded equity curve "
        "∏(1 + r) from its running peak: min(equity / peak − 1)",
    ),
    Measure(
        "max_drawdown_sum",
        Kind.RATIO,
        "the largest fall of the cumulative sum of daily returns Σr from "
        "its running peak: Qlib's max_drawdown (sum mode)",
    ),
    Measure(
        "sharpe",
        Kind.NUMBER,
        f"mean / standard deviation of the daily return over the daily risk-free return, × √{_N}",
    ),
    Measure("calmar", Kind.NUMBER, "cagr / −max_drawdown_compound"),
    Measure("daily_win_rate", Kind.RATIO, "the share of trading days with a positive return"),
    Measure(
        "mean_daily_turnover",
        Kind.RATIO,
        "the mean of each day's traded value (buys and sells) over the previous day's account value",
    ),
    Measure(
        "risk_free_annual",
        Kind.RATIO,
        "the mean annual risk-free rate that sharpe uses (Hikyuu's "
        "10-year government bond yield; 0 without one)",
    ),
    Measure("initial_cash", Kind.MONEY, "the account's value before the first day (Hikyuu: 帐户初始金额)"),
    Measure("final_account", Kind.MONEY, "cash plus positions at their last price after the last day"),
    Measure("total_cost", Kind.MONEY, "the sum of every trade's costs (commissions, stamp tax)"),
    Measure(
        "realised_pnl",
        Kind.MONEY,
        "the sum of the closed round trips' profits, net of costs (Hikyuu: 已平仓净利润总额)",
    ),
    Measure("open_positions", Kind.COUNT, "positions still held after the last day"),
    Measure("code", Kind.TEXT, "the benchmark's code"),
    Measure("mean", Kind.RATIO, "the mean daily return"),
    Measure("std", Kind.RATIO, "the standard deviation of the daily return (ddof 1)"),
    Measure("information_ratio", Kind.NUMBER, f"mean / std × √{_N}: Qlib's information_ratio"),
    Measure(
        "trades",
        Kind.COUNT,
        "closed round trips: a buy out of a flat position up to the sell that brings it back to flat",
    ),
    Measure(
        "fills",
        Kind.COUNT,
        "buy and sell orders filled (the rows of the trades table of a portfolio backtest)",
    ),
    Measure(
        "win_rate", Kind.RATIO, "the share of closed round trips whose profit, net of costs, is positive"
    ),
    Measure("avg_win", Kind.MONEY, "the mean profit of the winning round trips, net of costs"),
    Measure("avg_loss", Kind.MONEY, "the mean profit (≤ 0) of the losing round trips, net of costs"),
    Measure("profit_factor", Kind.NUMBER, "the winners' total profit / the losers' total loss"),
    Measure("max_consecutive_wins", Kind.COUNT, "the longest run of winning round trips, in closing order"),
    Measure("max_consecutive_losses", Kind.COUNT, "the longest run of losing round trips, in closing order"),
    Measure(
        "avg_holding_days",
        Kind.NUMBER,
        "the mean calendar days from a round trip's first buy to its closing sell",
        unit="days",
    ),
    Measure("avg_return", Kind.RATIO, "the mean of each round trip's profit / its buy value"),
    Measure(
        "ic",
        Kind.NUMBER,
        "the mean over days of the Pearson correlation, across stocks, of the score "
        "and the label (Qlib's IC)",
    ),
    Measure("icir", Kind.NUMBER, "ic / its standard deviation over days"),
    Measure(
        "rank_ic",
        Kind.NUMBER,
        "the mean over days of the Spearman correlation of the score and the label (Qlib's Rank IC)",
    ),
    Measure("rank_icir", Kind.NUMBER, "rank_ic / its standard deviation over days"),
    Measure("days", Kind.COUNT, "days with at least one scored and labelled stock"),
    Measure("first_day", Kind.DATE, "the first day scored"),
    Measure("last_day", Kind.DATE, "the last day scored"),
    Measure(
        "mse_learn_label",
        Kind.NUMBER,
        "the mean squared error of the score against the learning "
        "label (the label after the learn processors, e.g. CSZScoreNorm: what the model was fit to)",
    ),
    Measure(
        "mse_raw_label",
        Kind.NUMBER,
        "the mean squared error of the score against the raw label (LABEL0, the return itself)",
    ),
    Measure("rows", Kind.COUNT, "rows (stock-days) scored"),
    # the trading system's performance group: Hikyuu's Performance figures (their Hikyuu names in brackets)
    Measure(
        "invested_cash",
        Kind.MONEY,
        "the cash put into the account: initial_cash, as the system deposits no more (Hikyuu: 累计投入本金)",
    ),
    Measure(
        "invested_assets",
        Kind.MONEY,
        "the value of assets (shares) put into the account: 0, the system starts from cash (累计投入资产)",
    ),
    Measure("borrowed_cash", Kind.MONEY, "the cash borrowed: 0, the system does not borrow (累计借入现金)"),
    Measure(
        "borrowed_assets", Kind.MONEY, "the assets borrowed: 0, the system does not sell short (累计借入资产)"
    ),
    Measure("bonus_income", Kind.MONEY, "the cash bonuses received on the shares held (累计红利)"),
    Measure("cash", Kind.MONEY, "the cash after the last day (现金余额)"),
    Measure(
        "market_value",
        Kind.MONEY,
        "the open positions at their last close after the last day (未平仓头寸净值)",
    ),
    Measure(
        "total_assets",
        Kind.MONEY,
        "cash + market_value − borrowed_cash − borrowed_assets after the last day (当前总资产)",
    ),
    Measure("closed_cost", Kind.MONEY, "the costs of the closed round trips, both sides (已平仓交易总成本)"),
    Measure(
        "max_cash_share",
        Kind.RATIO,
        "the largest share of the cash that one buy took: (its amount + its costs) / the cash just before "
        "it, over every buy, open positions' included (单笔交易最大占用现金比例)",
    ),
    Measure(
        "mean_cash_share",
        Kind.RATIO,
        "the mean over every buy of (its amount + its costs) / the cash just before it (交易平均占用现金比例)",
    ),
    Measure(
        "account_return",
        Kind.RATIO,
        "total_assets / invested_cash − 1: the return of the account, open positions included "
        "(未平仓帐户收益率)",
    ),
    Measure("closed_return", Kind.RATIO, "realised_pnl / invested_cash (已平仓帐户收益率)"),
    Measure(
        "cagr_calendar",
        Kind.RATIO,
        "(total_assets / (invested_cash + invested_assets))^(1 / years) − 1, years = calendar days of the "
        "run / 365 (帐户年复合收益率; cagr counts 238 trading days a year instead)",
    ),
    Measure(
        "annual_return_calendar",
        Kind.RATIO,
        "(total_assets / (invested_cash + invested_assets) − 1) / years, years = calendar days of the run "
        "/ 365 (帐户平均年收益率)",
    ),
    Measure("winning_trades", Kind.COUNT, "closed round trips with a profit > 0 net of costs (赢利交易数)"),
    Measure("losing_trades", Kind.COUNT, "closed round trips with a profit ≤ 0 net of costs (亏损交易数)"),
    Measure("gross_profit", Kind.MONEY, "the total profit of the winning round trips (赢利交易赢利总额)"),
    Measure("gross_loss", Kind.MONEY, "the total profit (≤ 0) of the losing round trips (亏损交易亏损总额)"),
    Measure(
        "expectancy",
        Kind.MONEY,
        "the expected profit of a round trip: win_rate × avg_win + (1 − win_rate) × avg_loss, "
        "the mean profit (赢利期望值)",
    ),
    Measure("win_loss_ratio", Kind.NUMBER, "avg_win / |avg_loss| (平均赢利/平均亏损比例)"),
    Measure("max_win", Kind.MONEY, "the largest profit of a round trip (最大单笔赢利)"),
    Measure(
        "max_win_pct",
        Kind.RATIO,
        "the largest profit of a round trip / its buy value and costs (最大单笔盈利百分比)",
    ),
    Measure("max_loss", Kind.MONEY, "the largest loss (most negative profit) of a round trip (最大单笔亏损)"),
    Measure(
        "max_loss_pct",
        Kind.RATIO,
        "the largest loss of a round trip / its buy value and costs (最大单笔亏损百分比)",
    ),
    Measure(
        "avg_win_holding_days",
        Kind.NUMBER,
        "the mean calendar days from entry to exit of the winning round trips (赢利交易平均持仓时间)",
        unit="days",
    ),
    Measure(
        "max_win_holding_days",
        Kind.NUMBER,
        "the most calendar days from entry to exit of a winning round trip (赢利交易最大持仓时间)",
        unit="days",
    ),
    Measure(
        "avg_loss_holding_days",
        Kind.NUMBER,
        "the mean calendar days from entry to exit of the losing round trips (亏损交易平均持仓时间)",
        unit="days",
    ),
    Measure(
        "max_loss_holding_days",
        Kind.NUMBER,
        "the most calendar days from entry to exit of a losing round trip (亏损交易最大持仓时间)",
        unit="days",
    ),
    Measure(
        "max_consecutive_win_amount",
        Kind.MONEY,
        "the largest total profit of a run of winning round trips, in closing order (最大连续赢利金额)",
    ),
    Measure(
        "max_consecutive_loss_amount",
        Kind.MONEY,
        "the largest total loss of a run of losing round trips, in closing order (最大连续亏损金额)",
    ),
    Measure(
        "idle_days",
        Kind.COUNT,
        "trading days that end without any position (空仓总时间; Hikyuu counts calendar days)",
    ),
    Measure("idle_ratio", Kind.RATIO, "idle_days / trading_days (空仓时间/总时间)"),
    Measure(
        "avg_idle_days",
        Kind.NUMBER,
        "the mean length of a run of idle trading days (平均空仓时间)",
        unit="days",
    ),
    Measure("max_idle_days", Kind.COUNT, "the longest run of idle trading days (最长空仓时间)"),
    Measure("trades_per_year", Kind.NUMBER, "closed round trips / years of the run (交易机会频率/年)"),
    Measure(
        "r_expectancy",
        Kind.NUMBER,
        "the mean R multiple of the round trips: profit / the risk at entry, entry price × stop-loss "
        "fraction × shares (R乘数期望值; NaN without a stop loss)",
    ),
    Measure("annual_r", Kind.NUMBER, "r_expectancy × trades_per_year (年度期望R乘数)"),
    Measure("avg_win_r", Kind.NUMBER, "the mean R multiple of the winning round trips (赢利交易平均R乘数)"),
    Measure("avg_loss_r", Kind.NUMBER, "the mean R multiple of the losing round trips (亏损交易平均R乘数)"),
    Measure("max_win_r", Kind.NUMBER, "the largest R multiple of a round trip (最大单笔赢利R乘数)"),
    Measure("max_loss_r", Kind.NUMBER, "the smallest R multiple of a round trip (最大单笔亏损R乘数)"),
)
#: Every statistic by name.
MEASURES: dict[str, Measure] = {m.name: m for m in _LIST}

LABEL_TEXT = "Ref($close, −2) / Ref($close, −1) − 1 on adjusted closes, the model's label"
#: What each group measures.
GROUPS: dict[str, str] = {
    "portfolio": "the strategy's account; daily return r = return − cost (after costs)",
    "benchmark": "the benchmark's daily close-to-close return",
    "excess_return_without_cost": "Qlib's risk analysis of return − bench_return (before costs)",
    "excess_return_with_cost": "Qlib's risk analysis of return − bench_return − cost (after costs)",
    "trades": "the round trips and fills of the backtest",
    "performance": "Hikyuu's Performance figures of the trading system's run",
    "ic": f"the predictions against the label ({LABEL_TEXT})",
}

_EXCESS = ("mean", "std", "annualized_return_sum", "information_ratio", "max_drawdown_sum")


def measure(name: str) -> Measure:
    """The statistic called ``name``; raises for a name the platform does not define."""
    try:
        return MEASURES[name]
    except KeyError:
        raise InvalidInputError(f"unknown statistic {name!r}") from None


def has_benchmark(daily: pl.DataFrame) -> bool:
    """True when the daily frame carries a benchmark (a ``bench_return`` that is not all null)."""
    return "bench_return" in daily.columns and daily["bench_return"].null_count() < daily.height


def returns_statistics(r: np.ndarray, freq: str = "day") -> dict[str, Any]:
    """``total_return, cagr, annualized_return_sum, max_drawdown_compound, max_drawdown_sum`` of daily ``r``."""
    summed = risk_analysis(r, freq=freq, mode="sum")
    compounded = risk_analysis(r, freq=freq, mode="product")
    finite = r[~np.isnan(r)]
    return {
        "total_return": float(np.prod(1.0 + finite) - 1.0) if len(finite) else float("nan"),
        "cagr": compounded["annualized_return"],
        "annualized_return_sum": summed["annualized_return"],
        "max_drawdown_compound": compounded["max_drawdown"],
        "max_drawdown_sum": summed["max_drawdown"],
    }


def portfolio_statistics(
    daily: pl.DataFrame, risk_free: pl.DataFrame | None = None, freq: str = "day"
) -> dict[str, Any]:
    """The ``portfolio`` group of a daily frame (``datetime, return, cost, turnover``, optionally
    ``account`` and the cost in yuan through ``account``)."""
    periods = scaler(freq)
    net = (daily["return"] - daily["cost"]).cast(pl.Float64).to_numpy()
    out: dict[str, Any] = {"trading_days": daily.height, **returns_statistics(net, freq)}
    if "account" in daily.columns and daily.height:
        account = daily["account"].cast(pl.Float64).to_numpy()
        initial = float(account[0] / (1.0 + net[0]))
        out["total_return"] = float(account[-1] / initial - 1.0)
        out["initial_cash"] = initial
        out["final_account"] = float(account[-1])
        previous = np.concatenate([[initial], account[:-1]])
        out["total_cost"] = float(np.sum(daily["cost"].cast(pl.Float64).to_numpy() * previous))
    rf = risk_free_daily(daily["datetime"], risk_free, periods)
    drawdown = out["max_drawdown_compound"]
    out["sharpe"] = sharpe(net, rf, periods)
    out["calmar"] = float(out["cagr"] / -drawdown) if drawdown < 0 else float("nan")
    out["daily_win_rate"] = float(np.mean(net > 0)) if len(net) else float("nan")
    turnover = daily["turnover"].cast(pl.Float64).fill_null(0.0).to_numpy()
    out["mean_daily_turnover"] = float(np.mean(turnover)) if len(turnover) else float("nan")
    out["risk_free_annual"] = float(np.mean(rf) * periods) if len(rf) else 0.0
    return out


def ic_statistics(ic: pl.DataFrame) -> dict[str, Any]:
    """The ``ic`` group from the daily IC (``datetime, ic, rank_ic``), by the model's own definitions
    (:func:`hikyuu_qlib.modelling.metrics.summarize`), so that it equals the model's test figures
    over the same days."""
    from hikyuu_qlib.modelling.metrics import summarize

    out: dict[str, Any] = dict(summarize(ic))
    out["days"] = ic.height
    when = ic["datetime"].sort() if ic.height else None
    out["first_day"] = f"{when[0]:%Y-%m-%d}" if when is not None else None
    out["last_day"] = f"{when[-1]:%Y-%m-%d}" if when is not None else None
    return out


def statistics_document(
    daily: pl.DataFrame,
    trades: pl.DataFrame | None = None,
    *,
    benchmark: str | None = None,
    risk_free: pl.DataFrame | None = None,
    ic: pl.DataFrame | None = None,
    freq: str = "day",
) -> dict[str, Any]:
    """The statistics of a backtest from its daily frame (see
    :class:`~hikyuu_qlib.backtest.result.BacktestResult`), its fills and, optionally, the daily IC.

    ``benchmark`` names the benchmark; whether there is one is read from ``daily`` (a ``bench_return``
    that is not all null). Without one ``benchmark`` is ``None`` and no excess figure exists.
    """
    doc: dict[str, Any] = {"portfolio": portfolio_statistics(daily, risk_free, freq)}
    if has_benchmark(daily):
        ret = daily["return"].cast(pl.Float64).to_numpy()
        cost = daily["cost"].cast(pl.Float64).to_numpy()
        bench = daily["bench_return"].cast(pl.Float64).fill_null(0.0).to_numpy()
        doc["benchmark"] = {"code": benchmark, **returns_statistics(bench, freq)}
        doc["excess_return_without_cost"] = _excess(ret - bench, freq)
        doc["excess_return_with_cost"] = _excess(ret - bench - cost, freq)
    else:
        doc["benchmark"] = None
    if trades is not None:
        doc["trades"] = {**trade_statistics(trades), "fills": trades.height}
    if ic is not None and ic.height:
        doc["ic"] = ic_statistics(ic)
    return doc


def _excess(r: np.ndarray, freq: str) -> dict[str, float]:
    qlib = risk_analysis(r, freq=freq, mode="sum")
    renamed = {"annualized_return": "annualized_return_sum", "max_drawdown": "max_drawdown_sum"}
    out = {renamed.get(k, k): v for k, v in qlib.items()}
    return {k: out[k] for k in _EXCESS}


def entries(document: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """``(group, name, value)`` of every figure of a document, in order (groups that are ``None`` skipped)."""
    for group, values in document.items():
        if isinstance(values, Mapping):
            for name, value in values.items():
                yield group, name, value


def used_measures(document: Mapping[str, Any]) -> list[Measure]:
    """The definitions of the figures of ``document``, each once, in order of first use."""
    seen: dict[str, Measure] = {}
    for _, name, _ in entries(document):
        if name in MEASURES and name not in seen:
            seen[name] = MEASURES[name]
    return list(seen.values())
