"""``hq system run``: the Hikyuu-style trading system (signal, money manager, stops, slippage, costs) on
a list of codes, writing its trades, Hikyuu's performance statistics and an HTML report to one directory.

The components and their semantics are :mod:`hikyuu_qlib.backtest.system`'s; this module parses their
command-line specs (``ma-cross:5,20``, ``fixed-percent:0.2`` …).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import polars as pl
import typer

from hikyuu_qlib.backtest.system.config import (
    CostModel,
    FixedCount,
    FixedPercent,
    FixedRisk,
    MACross,
    MoneyManager,
    Signal,
    Slippage,
    StopLoss,
    TakeProfit,
    TradeSignals,
)
from hikyuu_qlib.cli.options import (
    MetricsFileOption,
    OutputFormat,
    SourceOption,
    SummaryFormatOption,
    UniverseFileOption,
)
from hikyuu_qlib.cli.output import check_out_dir, emit_json, guarded, stdout_console, writing
from hikyuu_qlib.cli.signals import (
    KOption,
    MethodOption,
    PctOption,
    ThresholdOption,
    signal_rule,
)
from hikyuu_qlib.domain import Adjust, DateRange, InvalidInputError, NotFoundError, StockCode
from hikyuu_qlib.serialization import to_json_text
from hikyuu_qlib.signals import SignalMethod, SignalRule, to_signals

if TYPE_CHECKING:
    from hikyuu_qlib.backtest.system.engine import TradingSystem

log = logging.getLogger("hikyuu_qlib.cli")

system_app = typer.Typer(
    help="The Hikyuu-style trading system: signal, money manager, stops, slippage and costs.",
    no_args_is_help=True,
)

SIGNAL_FORMS = 'ma-cross:FAST,SLOW, predictions:FILE (scores or signals) or expr:"BUY ; SELL"'
MM_FORMS = "fixed-count:SHARES, fixed-percent:FRACTION or fixed-risk:YUAN"
COSTS = {"a-share": CostModel.fixed_a, "default": CostModel, "none": CostModel.zero}


def parse_signal(text: str, rule: SignalRule) -> Signal:
    """A signal spec: ``ma-cross:5,20``; ``predictions:FILE`` (a file of ``datetime, code, score``
    turned into signals by ``rule``, or of ``datetime, code, signal`` used as it is); ``expr:BUY ; SELL``."""
    kind, sep, arg = text.partition(":")
    kind = kind.strip().lower()
    if not sep or not arg.strip():
        raise InvalidInputError(f"--signal {text!r}: expected {SIGNAL_FORMS}")
    if kind == "ma-cross":
        parts = [p.strip() for p in arg.split(",")]
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise InvalidInputError(
                f"--signal {text!r}: ma-cross takes two whole windows, e.g. ma-cross:5,20"
            )
        return MACross(int(parts[0]), int(parts[1]))
    if kind in ("predictions", "signals"):
        return TradeSignals(_signals_file(Path(arg.strip()), rule))
    if kind == "expr":
        from hikyuu_qlib.backtest.system.expressions import expr_signal

        return expr_signal(arg.strip().strip('"').strip("'"))
    raise InvalidInputError(f"--signal {text!r}: unknown kind {kind!r}; expected {SIGNAL_FORMS}")


def parse_money_manager(text: str) -> MoneyManager:
    """``fixed-count:1000``, ``fixed-percent:0.2`` or ``fixed-risk:5000``."""
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    try:
        value = float(arg)
    except ValueError:
        raise InvalidInputError(f"--mm {text!r}: expected {MM_FORMS}") from None
    if kind == "fixed-count":
        if not value.is_integer():
            raise InvalidInputError(f"--mm {text!r}: fixed-count takes a whole number of shares")
        return FixedCount(int(value))
    if kind == "fixed-percent":
        return FixedPercent(value)
    if kind == "fixed-risk":
        return FixedRisk(value)
    raise InvalidInputError(f"--mm {text!r}: unknown money manager {kind!r}; expected {MM_FORMS}")


def _signals_file(path: Path, rule: SignalRule) -> pl.DataFrame:
    if not path.is_file():
        raise NotFoundError(f"predictions file not found: {path}")
    frame = (
        pl.read_csv(path, try_parse_dates=True) if path.suffix.lower() == ".csv" else pl.read_parquet(path)
    )
    if "signal" in frame.columns:
        return frame
    if "score" not in frame.columns:
        raise InvalidInputError(f"{path}: expected a score column (predictions) or a signal column (signals)")
    return to_signals(frame, rule)


@system_app.command("run")
@guarded(job="system_run")
def run(
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for report.html, trades, statistics")],
    signal: Annotated[str, typer.Option("--signal", help=SIGNAL_FORMS)],
    source: SourceOption = None,
    codes: Annotated[str | None, typer.Option("--codes", help="CODE,CODE,… to trade")] = None,
    universe: Annotated[
        str | None, typer.Option("--universe", "-u", help="a universe of the source (or a Hikyuu block)")
    ] = None,
    universe_file: UniverseFileOption = None,
    start: Annotated[str | None, typer.Option(help="first date (default: the calendar's first)")] = None,
    end: Annotated[str | None, typer.Option(help="last date (default: the calendar's last)")] = None,
    mm: Annotated[
        str,
        typer.Option(
            "--mm",
            help="fixed-count:SHARES; fixed-percent:P (Hikyuu's: cash × P / the risk a share, the price "
            "or, with --stop-loss, the distance to the stop); fixed-risk:YUAN (needs --stop-loss)",
        ),
    ] = "fixed-count:1000",
    stop_loss: Annotated[
        float | None, typer.Option("--stop-loss", help="exit at a close <= entry × (1 − X)")
    ] = None,
    take_profit: Annotated[
        float | None, typer.Option("--take-profit", help="exit at a close >= entry × (1 + X)")
    ] = None,
    slippage: Annotated[
        float | None, typer.Option("--slippage", help="buys pay X more, sells get X less than the price")
    ] = None,
    cost: Annotated[
        str,
        typer.Option(
            "--cost",
            help="a-share (Hikyuu's TC_FixedA: commission 0.18 % min 5 yuan, stamp tax 0.1 % on sells, "
            "Shanghai transfer fee), default (the same without the transfer fee) or none",
        ),
    ] = "a-share",
    cash: Annotated[float, typer.Option("--cash", min=0.0, help="initial cash, yuan")] = 100_000.0,
    fill: Annotated[str, typer.Option("--fill", help="next-open (Hikyuu's delay) or close")] = "next-open",
    adjust: Annotated[
        str, typer.Option("--adjust", help="none (gifts and bonuses paid in), forward or backward")
    ] = "none",
    benchmark: Annotated[
        str | None, typer.Option("--benchmark", help="benchmark code (default none)")
    ] = None,
    method: MethodOption = SignalMethod.topk,
    k: KOption = None,
    threshold: ThresholdOption = None,
    pct: PctOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
    metrics_file: MetricsFileOption = None,
) -> None:
    """Run a trading system over codes and write trades.csv, statistics.json and report.html into --out.

    With --signal predictions:FILE, scores become signals by --method (default topk, k 50): a code buys when it enters the selection and sells when it leaves (see hq signals); without --codes or --universe the codes are the file's.
    """
    from hikyuu_qlib.backtest.report import run_report
    from hikyuu_qlib.cli.telemetry import current
    from hikyuu_qlib.kernel_cache import warm_kernels
    from hikyuu_qlib.research import ResearchContext

    check_out_dir(out)
    chosen = [
        name
        for name, value in (("--codes", codes), ("--universe", universe), ("--universe-file", universe_file))
        if value
    ]
    if len(chosen) > 1:
        raise InvalidInputError(f"{' and '.join(chosen)} are mutually exclusive: give one list of codes")
    if cost not in COSTS:
        raise InvalidInputError(f"--cost {cost!r}: expected {', '.join(COSTS)}")
    if fill not in ("next-open", "close"):
        raise InvalidInputError(f"--fill {fill!r}: expected next-open or close")
    from hikyuu_qlib.backtest.system.engine import TradingSystem  # its numba kernel, when a system runs

    system = TradingSystem(
        parse_signal(signal, signal_rule(method, k, threshold, pct)),
        parse_money_manager(mm),
        stop_loss=StopLoss(stop_loss) if stop_loss else None,
        take_profit=TakeProfit(take_profit) if take_profit else None,
        slippage=Slippage(slippage) if slippage else None,
        cost=COSTS[cost](),
        init_cash=cash,
        fill="next_open" if fill == "next-open" else "close",
    )
    command = current()
    with ResearchContext.open(source, settings=command.settings, telemetry=command.telemetry) as ctx:
        store = ctx.store
        cal = store.calendar()
        if cal.len() == 0:
            raise InvalidInputError(f"{store.source} has no trading dates")
        dates = DateRange.of(start or cal.min(), end or cal.max())  # type: ignore[arg-type]
        names = _codes(ctx, system, codes, universe, universe_file, dates)
        warm_kernels("system")  # when numba's cache is cold: compiled in a child, not in this process
        result = system.run(store, names, dates, adjust=Adjust.parse(adjust), benchmark=benchmark)
        statistics = result.statistics(ctx.risk_free())
        title = f"Trading system — {signal}, {mm}"
        paths = run_report(
            out, result, statistics=statistics, benchmark=result.benchmark, title=title, subtitle=ctx.source
        )
        source_name = ctx.source
    trades_csv = out / "trades.csv"
    stats_json = out / "statistics.json"
    with writing(trades_csv):
        result.trades.write_csv(trades_csv)
    with writing(stats_json):
        stats_json.write_text(to_json_text(statistics, indent=2) + "\n", encoding="utf-8")
    doc: dict[str, Any] = {
        "out": str(out),
        "report": str(paths.html),
        "trades": str(trades_csv),
        "statistics_file": str(stats_json),
        "source": source_name,
        "codes": [str(c) for c in names],
        "signal": signal,
        "money_manager": mm,
        "days": result.daily.height,
        "closed_trades": result.trades.height,
        "open_positions": result.positions.height,
        "statistics": statistics,
    }
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    from hikyuu_qlib.cli.backtest import statistics_table

    console = stdout_console()
    console.print(f"[bold]report[/bold]: {paths.html}")
    console.print(statistics_table(statistics))


def _codes(
    ctx: Any,
    system: TradingSystem,
    codes: str | None,
    universe: str | None,
    universe_file: Path | None,
    dates: DateRange,
) -> list[StockCode]:
    """The codes to trade: the list, the universe's members over the dates (those with bars), or the
    codes a signals file buys."""
    if codes:
        return [StockCode.parse(c) for c in codes.split(",") if c.strip()]
    if universe or universe_file:
        members = ctx.universe(universe or "", dates, file=universe_file).members_between(dates)
        with_data = set(ctx.store.stocks(valid=None).filter(pl.col("has_data"))["code"].to_list())
        kept = [c for c in members if c in with_data]
        if len(kept) < len(members):
            log.warning(
                "%d member(s) of the universe have no bars and are left out", len(members) - len(kept)
            )
        if not kept:
            raise InvalidInputError(f"no member of the universe has bars in {dates}")
        return [StockCode.parse(c) for c in kept]
    if isinstance(system.signal, TradeSignals):
        frame = system.signal.signals
        bought = frame.filter(pl.col("signal").cast(pl.String).str.to_uppercase() == "BUY")["code"]
        found = sorted({str(StockCode.parse(c)) for c in bought.to_list()})
        if not found:
            raise InvalidInputError("the signals hold no BUY: nothing to trade")
        return [StockCode.parse(c) for c in found]
    raise InvalidInputError("give the codes to trade: --codes, --universe or --universe-file")
