"""``hq rolling FILE.yaml``: rolling retraining (see :mod:`hikyuu_qlib.workflow.rolling`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hikyuu_qlib.backtest.formats import format_measure
from hikyuu_qlib.cli.options import DbOption, ExecutorOption, OutputFormat, SummaryFormatOption, WorkersOption
from hikyuu_qlib.cli.output import check_out_dir, emit_json, guarded, stderr_console, stdout_console
from hikyuu_qlib.cli.progress import progress_bar


@guarded
def rolling(
    workflow: Annotated[Path, typer.Argument(help="the workflow file (YAML); its rolling: block, if any")],
    executor: ExecutorOption = "local",
    workers: WorkersOption = None,
    step: Annotated[int | None, typer.Option("--step", min=1, help="trading days per window")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="expanding or sliding")] = None,
    train_days: Annotated[
        int | None,
        typer.Option("--train-days", help="train length in trading days (default: the workflow's)"),
    ] = None,
    valid_days: Annotated[
        int | None,
        typer.Option("--valid-days", help="valid length in trading days (default: the workflow's)"),
    ] = None,
    test: Annotated[
        str | None, typer.Option("--test", help="the test span START:END (default: the workflow's test)")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="continue an interrupted run (finished windows are kept; models "
            "left training by the dead run are marked failed)",
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="start over: retrain every window")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="outputs root (default: the file's outputs.dir)")
    ] = None,
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Retrain on a rolling window, score each test slice, stitch, backtest and compare with the static model."""
    from pydantic import ValidationError

    from hikyuu_qlib.domain import InvalidInputError
    from hikyuu_qlib.executors import open_executor
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.rolling.windows import RollingSpec
    from hikyuu_qlib.settings import load_settings
    from hikyuu_qlib.workflow.config import load_workflow
    from hikyuu_qlib.workflow.rolling import run_rolling
    from hikyuu_qlib.workflow.tasks import task_threads

    if resume and force:
        raise InvalidInputError("--resume keeps the finished windows and --force discards them: give one")
    if out is not None:
        check_out_dir(out)
    config = load_workflow(workflow)
    given = (
        ("step", step),
        ("mode", mode),
        ("train_days", train_days),
        ("valid_days", valid_days),
        ("test", test),
    )
    overrides = {k: v for k, v in given if v is not None}
    if overrides:
        base = (config.rolling or RollingSpec()).model_dump()
        try:
            spec = RollingSpec.model_validate({**base, **overrides})
        except ValidationError as exc:
            first = exc.errors()[0]
            option = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "a rolling option"
            raise InvalidInputError(f"{option}: {first['msg']}") from None
        config = config.model_copy(update={"rolling": spec})
    with ResearchContext.open(config.source, settings=load_settings(), db=db) as ctx:
        pool = open_executor(
            executor, registry_url=ctx.registry_url, threads=task_threads(config), workers=workers
        )
        try:
            with progress_bar("windows", enabled=fmt is not OutputFormat.json) as bar:
                result = run_rolling(config, ctx, pool, resume=resume, force=force, out_root=out, on_task=bar)
        finally:
            pool.close()
    show_rolling(result.to_json(), fmt)


def show_rolling(doc: dict[str, Any], fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    console = stdout_console()
    table = Table(title=f"rolling {doc['rolling_id']}: {len(doc['windows'])} windows on {doc['executor']}"
                  + (f" ({doc['skipped_windows']} finished earlier)" if doc["skipped_windows"] else ""))  # fmt: skip
    table.add_column("figure")
    series = sorted(
        {s for values in doc["comparison"].values() for s in values}, key=["rolling", "static"].index
    )
    for name in series:
        table.add_column(name, justify="right")
    for figure, values in doc["comparison"].items():
        short = figure.rsplit(".", 1)[-1]
        table.add_row(figure, *(format_measure(short, values.get(s)) for s in series))
    console.print(table)
    console.print(f"outputs:     {doc['out_dir']}")
    console.print(f"predictions: {doc['predictions']}")
    stderr_console().print(f"timings: {doc['timings']}", highlight=False)
