"""``hq demo``: the main job. On the embedded synthetic market by default (no files, no network, no
services): factors, training, registration, prediction, backtest and report, then where everything is.
With ``--source hikyuu:DIR`` or ``--source qlib:DIR`` it does the same on real data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from hikyuu_qlib.cli.output import ReportFormat, check_out_dir, guarded
from hikyuu_qlib.cli.run import show_run, stage_bars
from hikyuu_qlib.domain import InvalidInputError, StockType
from hikyuu_qlib.research import ResearchContext
from hikyuu_qlib.workflow.config import (
    BacktestSpec,
    ModelSpec,
    Outputs,
    Segments,
    TopkDropoutSpec,
    WorkflowConfig,
)
from hikyuu_qlib.workflow.runner import run_workflow

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
    db: Annotated[
        str | None, typer.Option("--db", help="model registry URL", envvar="HQ_DATABASE_URL")
    ] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", "-f", help="table or json")] = ReportFormat.table,
) -> None:
    """Build Alpha158, train LightGBM, register, predict, backtest TopkDropout and write report.html."""
    check_out_dir(out)
    with ResearchContext.open(source, db=db) as ctx:
        config = demo_workflow(ctx, source, out)
        result = run_workflow(config, force=force, progress=stage_bars(fmt), context=ctx)
    show_run(result.to_json(), fmt)


def demo_workflow(ctx: ResearchContext, source: str, out: Path) -> WorkflowConfig:
    """A workflow sized to the store: the last eight years split 5/1/2 into train, valid and test."""
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
    members = ctx.store.members(universe)["code"].n_unique()
    topk = max(2, min(50, members // 6))
    segments = Segments(
        train=f"{first:%Y-%m-%d}:{train_end:%Y-%m-%d}",
        valid=f"{train_end + dt.timedelta(days=1):%Y-%m-%d}:{valid_end:%Y-%m-%d}",
        test=f"{valid_end + dt.timedelta(days=1):%Y-%m-%d}:{last:%Y-%m-%d}",
    )
    return WorkflowConfig(
        source=ctx.source,
        universe=universe,
        model=ModelSpec(name=f"demo-{ctx.source.split(':', 1)[0]}"),
        segments=segments,
        strategy=TopkDropoutSpec(topk=topk, n_drop=max(1, topk // 10)),
        backtest=BacktestSpec(benchmark=_benchmark(ctx), limit_threshold=_limit_threshold(ctx)),
        outputs=Outputs(dir=out),
    )


def _universe(ctx: ResearchContext) -> str:
    try:
        if ctx.store.members("csi300").height:
            return "csi300"
    except (InvalidInputError, LookupError):
        pass
    return "all"


def _benchmark(ctx: ResearchContext) -> str | None:
    indices = set(ctx.store.stocks(types=[StockType.INDEX], valid=None)["code"].to_list())
    return next((code for code in BENCHMARKS if code in indices), None)


def _limit_threshold(ctx: ResearchContext) -> float:
    """Qlib's 0.095, or 9.5 where a Qlib store keeps ``$change`` in percent (as the shared CN data does)."""
    store = ctx.qlib_store(_universe(ctx))
    sample = store.features("all", ["$change"]).get_column("change").drop_nans().drop_nulls()
    return 9.5 if sample.len() and float(sample.abs().quantile(0.99) or 0.0) > 1.0 else 0.095
