"""``hq demo``: the main job. On the embedded synthetic market by default (no files, no network, no
services): factors, training, registration, prediction, backtest and report, then where everything is.
With ``--source hikyuu:DIR`` or ``--source qlib:DIR`` it does the same on real data."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from hikyuu_qlib.backtest.config import BacktestConfig
from hikyuu_qlib.cli.options import DbOption, OutputFormat, SummaryFormatOption
from hikyuu_qlib.cli.output import check_out_dir, guarded
from hikyuu_qlib.cli.run import show_run, stage_bars
from hikyuu_qlib.cli.telemetry import current
from hikyuu_qlib.domain import DateRange, HQError, InvalidInputError, Segments, StockCode, StockType
from hikyuu_qlib.research import ResearchContext
from hikyuu_qlib.workflow.config import (
    ModelSpec,
    Outputs,
    WorkflowConfig,
)

log = logging.getLogger("hikyuu_qlib.cli")

BENCHMARKS = ("SH000300", "SH000905", "SH000001")


@guarded
def demo(
    source: Annotated[
        str, typer.Option("--source", "-s", help="synthetic[:SEED], hikyuu:PATH or qlib:PATH")
    ] = "synthetic",
    out: Annotated[Path, typer.Option("--out", "-o", help="where the run directory goes")] = Path(
        "hq-output/demo"
    ),
    force: Annotated[
        bool, typer.Option("--force", help="retrain even if this exact run was done before")
    ] = False,
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Build Alpha158, train LightGBM, register, predict, backtest TopkDropout and write report.html."""
    from hikyuu_qlib.workflow.runner import run_workflow  # the research stack, loaded when a run starts

    check_out_dir(out)
    command = current()
    with ResearchContext.open(source, settings=command.settings, db=db, telemetry=command.telemetry) as ctx:
        config, notes = demo_workflow(ctx, source, out)
        result = run_workflow(config, ctx, force=force, progress=stage_bars(fmt))
    show_run({**result.to_json(), "notes": notes}, fmt)


#: Qlib's LightGBM settings are sized for CSI 300 (about 300 stocks a day): on a universe of fewer than
#: :data:`SMALL_UNIVERSE` stocks with bars, L1 205.7 and L2 581 leave every tree without a split. The demo
#: then trains with these instead (chosen from the universe's size alone, before any training).
SMALL_UNIVERSE = 50
SMALL_UNIVERSE_PARAMS: dict[str, float | int | str | bool] = {
    "lambda_l1": 1.0,
    "lambda_l2": 1.0,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "learning_rate": 0.05,
}


def demo_workflow(ctx: ResearchContext, source: str, out: Path) -> tuple[WorkflowConfig, list[str]]:
    """A workflow sized to the store: the last eight years split 5/1/2 into train, valid and test, the
    portfolio and the model sized to the stocks with bars; and notes on what was adapted (see
    :func:`choose_benchmark`)."""
    calendar = ctx.store.calendar()
    if calendar.len() < 500:
        raise InvalidInputError(
            f"{ctx.source} has {calendar.len()} trading days: the demo needs at least 500"
        )
    last: dt.datetime = calendar[-1]
    first: dt.datetime = max(calendar[0], last.replace(year=last.year - 8))
    days = (last - first).days
    train_end = first + dt.timedelta(days=days * 5 // 8)
    valid_end = first + dt.timedelta(days=days * 6 // 8)
    universe = _universe(ctx)
    members = _members_with_bars(ctx, universe)
    if members < 2:
        raise InvalidInputError(f"{ctx.source}: universe {universe} has {members} stock(s) with bars")
    topk = max(2, min(50, members // 6))
    segments = Segments.parse(
        train=f"{first:%Y-%m-%d}:{train_end:%Y-%m-%d}",
        valid=f"{train_end + dt.timedelta(days=1):%Y-%m-%d}:{valid_end:%Y-%m-%d}",
        test=f"{valid_end + dt.timedelta(days=1):%Y-%m-%d}:{last:%Y-%m-%d}",
    )
    benchmark, notes = choose_benchmark(ctx, segments["test"])
    params: dict[str, float | int | str | bool] = {}
    if members < SMALL_UNIVERSE:
        params = dict(SMALL_UNIVERSE_PARAMS)
        note = (
            f"model: universe {universe} has {members} stocks with bars; Qlib's settings are sized for about "
            f"300, so the demo trains with {', '.join(f'{k} {v}' for k, v in params.items())}"
        )
        log.warning("%s", note)
        notes.append(note)
    config = WorkflowConfig(
        source=ctx.source,
        universe=universe,
        model=ModelSpec(name=f"demo-{ctx.source.split(':', 1)[0]}", params=params),
        segments=segments,
        backtest=BacktestConfig(topk=topk, n_drop=max(1, topk // 10), benchmark=benchmark),
        outputs=Outputs(dir=out),
    )
    return config, notes


def _members_with_bars(ctx: ResearchContext, universe: str) -> int:
    """How many members of ``universe`` (at any time) the store holds bars for."""
    members = ctx.store.members(universe)["code"].unique().to_list()
    stocks = ctx.store.stocks(valid=None)
    return int(stocks.filter(pl.col("code").is_in(members) & pl.col("has_data")).height)


def _universe(ctx: ResearchContext) -> str:
    try:
        if ctx.store.members("csi300").height:
            return "csi300"
    except (InvalidInputError, LookupError):
        pass
    return "all"


def choose_benchmark(ctx: ResearchContext, test: DateRange) -> tuple[str | None, list[str]]:
    """The first index of :data:`BENCHMARKS` (CSI 300, CSI 500, then the store's main index SH000001)
    that the store lists with bars over the ``test`` segment (on 90 % of its trading days), or ``None``.

    Checked before any training. The notes (each also logged) say which listed index was passed over
    and what is used instead, or that the backtest runs without a benchmark.
    """
    listed = set(ctx.store.stocks(types=[StockType.INDEX], valid=None)["code"].to_list())
    days = ctx.store.calendar(dates=test).len()
    passed: list[str] = []
    chosen = None
    for code in (c for c in BENCHMARKS if c in listed):
        try:
            bars = ctx.store.read_bars(StockCode.parse(code), dates=test).height
        except (HQError, OSError):
            bars = 0
        if days and bars >= 0.9 * days:
            chosen = code
            break
        passed.append(f"{code} (bars on {bars} of {days} days)")
    if chosen is not None and not passed:
        return chosen, []
    why = f"{', '.join(passed)} lack bars over the test segment {test}" if passed else "no index listed"
    instead = f"using {chosen} instead" if chosen else "running without one (no excess-return figures)"
    note = f"benchmark: {why}; {instead}"
    log.warning("%s", note)
    return chosen, [note]
