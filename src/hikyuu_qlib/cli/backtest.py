"""``hq backtest run``: a TopkDropout portfolio backtest of predictions (a file or a registered model),
with the HTML report, PNGs and the daily frame written to one directory."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.table import Table

from hikyuu_qlib.backtest.config import BacktestConfig
from hikyuu_qlib.cli.options import (
    DbOption,
    MetricsFileOption,
    OutputFormat,
    SourceOption,
    SummaryFormatOption,
    UniverseFileOption,
)
from hikyuu_qlib.cli.output import check_out_dir, emit_json, guarded, stdout_console
from hikyuu_qlib.cli.remote import (
    Remote,
    ServerOption,
    TokenOption,
    day,
    refuse_local_options,
    remote_of,
    run_job,
)
from hikyuu_qlib.cli.telemetry import current
from hikyuu_qlib.domain import DateRange, InvalidInputError, NotFoundError
from hikyuu_qlib.serialization import flatten

log = logging.getLogger("hikyuu_qlib.cli")


def _default(name: str) -> str:
    """``(default …)`` for a help text: the default of :class:`BacktestConfig`, stated there only."""
    value = next(f.default for f in dataclasses.fields(BacktestConfig) if f.name == name)
    return f"(default {value})"


backtest_app = typer.Typer(
    help="Portfolio backtests (TopkDropout, A-share rules) and reports.", no_args_is_help=True
)


@backtest_app.command("run")
@guarded(job="backtest_run")
def run(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="directory for report.html, PNGs, daily frame (a local run needs it)"
        ),
    ] = None,
    predictions: Annotated[
        Path | None, typer.Option("--predictions", "-p", help="parquet/csv with datetime, code, score")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="a registered model id (or unique prefix) to predict with"),
    ] = None,
    source: SourceOption = None,
    universe: Annotated[str, typer.Option(help="universe to predict for (with --model)")] = "csi300",
    universe_file: UniverseFileOption = None,
    start: Annotated[
        str | None,
        typer.Option(help="first day (default: the first predicted day; with --model, its test segment's)"),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="last day (default: the last predicted day; with --model, its test segment's)"),
    ] = None,
    topk: Annotated[int | None, typer.Option(min=1, help=f"stocks held {_default('topk')}")] = None,
    n_drop: Annotated[
        int | None, typer.Option("--n-drop", min=0, help=f"stocks replaced each day {_default('n_drop')}")
    ] = None,
    rebalance: Annotated[
        str | None,
        typer.Option(
            help="trade on: day, week or month (the first trading day of each), or every N trading days; "
            f"holdings are carried in between {_default('rebalance')}"
        ),
    ] = None,
    benchmark: Annotated[
        str | None, typer.Option(help=f"benchmark code, '' for none {_default('benchmark')}")
    ] = None,
    deal_price: Annotated[str | None, typer.Option(help=f"close or open {_default('deal_price')}")] = None,
    limit_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help=f"limit up/down when |$change| >= this, a fraction (0.095 = 9.5 %) {_default('limit_threshold')}",
        ),
    ] = None,
    open_cost: Annotated[
        float | None, typer.Option(min=0.0, help=f"cost rate of buys {_default('open_cost')}")
    ] = None,
    close_cost: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help=f"cost rate of sells, the stamp tax included as Qlib folds it in {_default('close_cost')}",
        ),
    ] = None,
    min_cost: Annotated[
        float | None, typer.Option(min=0.0, help=f"minimum cost of a trade, yuan {_default('min_cost')}")
    ] = None,
    stamp_tax: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help=f"stamp tax rate on sells on top of --close-cost, which already holds it {_default('stamp_tax')}",
        ),
    ] = None,
    account: Annotated[
        float | None, typer.Option(min=0.0, help=f"initial cash, yuan {_default('account')}")
    ] = None,
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
    metrics_file: MetricsFileOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Backtest TopkDropout(topk, n_drop) and write the report. With --model the summary is stored with it.

    Costs are Qlib's (cn region; the defaults are shown with each option): a buy pays
    max(value × open-cost, min-cost); a sell pays max(value × close-cost, min-cost) + value × stamp-tax.
    Qlib folds the stamp tax into close-cost (its default is the commission plus the stamp tax), so
    stamp-tax, an extension, is charged on top of it.

    With --server (or HQ_SERVER) the server runs it as a backtest job of --model (a write token), writes
    the report under its home, and the command waits for it (Ctrl-C cancels the job).
    """
    from hikyuu_qlib.backtest import run_topk_backtest
    from hikyuu_qlib.backtest.report import prediction_ic, run_report
    from hikyuu_qlib.research import ResearchContext

    if predictions is not None and model is not None:
        raise InvalidInputError(
            "--predictions and --model are mutually exclusive: backtest a predictions file, "
            "or predict with a registered model, not both"
        )
    if predictions is None and model is None:
        raise InvalidInputError("give --predictions FILE or --model ID")
    if predictions is not None and universe_file is not None:
        raise InvalidInputError("--universe-file chooses what --model predicts: not with --predictions")
    remote = remote_of(server, token, current().settings)
    if remote is None:
        if out is None:
            raise InvalidInputError("give --out DIR: the directory the report is written to")
        check_out_dir(out)
    given: dict[str, Any] = {
        "topk": topk,
        "n_drop": n_drop,
        "rebalance": rebalance,
        "deal_price": deal_price,
        "limit_threshold": limit_threshold,
        "open_cost": open_cost,
        "close_cost": close_cost,
        "min_cost": min_cost,
        "stamp_tax": stamp_tax,
        "account": account,
        "benchmark": benchmark,
    }
    config = BacktestConfig(**{name: value for name, value in given.items() if value not in (None, "")})
    if benchmark == "":
        config = dataclasses.replace(config, benchmark=None)
    if remote is not None:
        if predictions is not None:
            raise InvalidInputError("--predictions: only for a local run (a server backtests a --model)")
        refuse_local_options(source=source, out=out, metrics_file=metrics_file, universe_file=universe_file)
        assert model is not None
        _print_backtest(_remote_backtest(remote, model, universe, start, end, config, fmt), fmt)
        return
    assert out is not None
    command = current()
    with ResearchContext.open(source, settings=command.settings, db=db, telemetry=command.telemetry) as ctx:
        model_id = ctx.resolve_model(model) if model else None
        if predictions is not None:
            preds = read_predictions(predictions)
            if start or end:
                span = DateRange.of(start, end)
                preds = preds.filter(pl.col("datetime").is_between(span.start, span.end))
        else:  # predicted over exactly these dates
            assert model_id is not None
            dates = ctx.model_dates(ctx.registry.get(model_id), start, end)
            preds = ctx.predict(model_id, universe, dates, universe_file=universe_file)
        if preds.height == 0:
            raise InvalidInputError("no predictions in the requested dates")
        result = run_topk_backtest(preds, ctx.features, config)
        ic = prediction_ic(preds, ctx.features)
        statistics = result.statistics(ctx.risk_free(), ic=ic)
        title = f"TopkDropout({config.topk}, {config.n_drop})"
        if config.rebalance != "day":
            title += f", rebalance {config.rebalance}"
        title += f" — model {model_id}" if model_id else ""
        importance = None
        if model_id is not None:
            from hikyuu_qlib.modelling.importance import load_importance

            importance = load_importance(ctx.registry.get(model_id), ctx.artifacts)
        paths = run_report(
            out,
            result,
            ic=ic,
            benchmark=config.benchmark,
            title=title,
            subtitle=ctx.source,
            statistics=statistics,
            importance=importance,
        )
        if model_id is not None:
            ctx.record_backtest(
                model_id,
                {
                    "topk": config.topk,
                    "n_drop": config.n_drop,
                    "rebalance": str(config.rebalance),
                    **flatten(statistics),
                },
            )
    doc: dict[str, Any] = {
        "out": str(out),
        "report": str(paths.html),
        "daily": str(paths.daily_parquet),
        "model_id": model_id,
        "days": result.daily.height,
        "statistics": statistics,
    }
    _print_backtest(doc, fmt)


def _print_backtest(doc: dict[str, Any], fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    console = stdout_console()
    console.print(f"[bold]report[/bold]: {doc['report']}")
    console.print(statistics_table(doc["statistics"]))


def _remote_backtest(
    remote: Remote,
    model: str,
    universe: str,
    start: str | None,
    end: str | None,
    config: BacktestConfig,
    fmt: OutputFormat,
) -> dict[str, Any]:
    """Run a backtest job on the server and wait for it: the local command's document, with the job's
    id, and the paths of the report on the server. Ctrl-C (or a failure to wait) cancels the job."""
    if start is None or end is None:
        raise InvalidInputError("a backtest job on a server needs --start and --end")
    body = {
        "model": model,
        "universe": universe,
        "start": day(start, "start date"),
        "end": day(end, "end date"),
        "backtest": dataclasses.asdict(config),
    }
    with remote.client() as hq:
        done = run_job(hq, "backtest", body, fmt, remote.url)
    result = done.result or {}
    report = str(result.get("report", ""))
    return {
        "out": str(Path(report).parent) if report else None,
        "report": report,
        "daily": result.get("daily"),
        "model_id": result.get("model_id"),
        "days": result.get("days"),
        "statistics": result.get("statistics"),
        "job_id": done.id,
    }


def statistics_table(statistics: dict[str, Any], title: str = "statistics") -> Table:
    """The statistics document as a table: group, name, value printed by its kind (see
    :mod:`hikyuu_qlib.backtest.formats`; the definitions are in report.html)."""
    from hikyuu_qlib.backtest.formats import summary_rows

    table = Table(title=title)
    table.add_column("group")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for row in summary_rows(statistics):
        table.add_row(*row)
    return table


def read_predictions(path: Path) -> pl.DataFrame:
    """Predictions from parquet or csv, with the columns ``datetime, code, score``."""
    if not path.is_file():
        raise NotFoundError(f"predictions file not found: {path}")
    frame = (
        pl.read_csv(path, try_parse_dates=True) if path.suffix.lower() == ".csv" else pl.read_parquet(path)
    )
    missing = {"datetime", "code", "score"} - set(frame.columns)
    if missing:
        raise InvalidInputError(
            f"{path}: missing column(s) {sorted(missing)}; expected datetime, code, score"
        )
    return frame.select(
        pl.col("datetime").cast(pl.Datetime("ms")),
        pl.col("code").cast(pl.String),
        pl.col("score").cast(pl.Float64),
    )
