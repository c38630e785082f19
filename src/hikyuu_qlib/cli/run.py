"""``hq run FILE.yaml``: one command for a whole research run (see :mod:`hikyuu_qlib.workflow.runner`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hikyuu_qlib.backtest.formats import format_measure
from hikyuu_qlib.cli.backtest import statistics_table
from hikyuu_qlib.cli.options import (
    DbOption,
    MemoryBudgetOption,
    MetricsFileOption,
    OutputFormat,
    SummaryFormatOption,
)
from hikyuu_qlib.cli.output import (
    check_out_dir,
    emit_json,
    guarded,
    stderr_console,
    stdout_console,
)
from hikyuu_qlib.cli.progress import progress_bar
from hikyuu_qlib.ports import Progress

#: The model's test-segment figures a run summary shows (names of :mod:`hikyuu_qlib.backtest.measures`).
MODEL_FIGURES = ("ic", "icir", "rank_ic", "rank_icir", "mse_learn_label", "mse_raw_label", "days")


@guarded(job="run")
def run(
    workflow: Annotated[Path, typer.Argument(help="the workflow file (YAML)")],
    force: Annotated[
        bool, typer.Option("--force", help="retrain even if an identical run registered a model")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="outputs root (default: the file's outputs.dir)")
    ] = None,
    db: DbOption = None,
    fmt: SummaryFormatOption = OutputFormat.table,
    metrics_file: MetricsFileOption = None,
    memory_budget: MemoryBudgetOption = None,
) -> None:
    """Features → train and register → predict → backtest → report, from one validated workflow file."""
    from hikyuu_qlib.cli.telemetry import current
    from hikyuu_qlib.research import ResearchContext
    from hikyuu_qlib.workflow.config import load_workflow
    from hikyuu_qlib.workflow.runner import run_workflow

    if out is not None:
        check_out_dir(out)
    config = load_workflow(workflow)
    command = current()
    with ResearchContext.open(
        config.source, settings=command.settings, db=db, telemetry=command.telemetry
    ) as ctx:
        result = run_workflow(
            config, ctx, force=force, out_root=out, progress=stage_bars(fmt), memory_budget=memory_budget
        )
    show_run(result.to_json(), fmt)


def stage_bars(fmt: OutputFormat) -> Callable[[str], AbstractContextManager[Progress]]:
    """Rich progress bars on stderr for each long stage (off when stdout carries JSON)."""

    def open_bar(name: str) -> AbstractContextManager[Progress]:
        return progress_bar(name, enabled=fmt is not OutputFormat.json)

    return open_bar


def show_run(doc: dict[str, Any], fmt: OutputFormat) -> None:
    """Print a run's summary: stage timings, key metrics and where the outputs are."""
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    console = stdout_console()
    model = doc["metrics"]["model"]
    test = model.get("test") if isinstance(model.get("test"), dict) else model
    table = Table(title=f"run {doc['run_id']}" + (" (model reused)" if doc["reused_model"] else ""))
    table.add_column("group")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for name in MODEL_FIGURES:
        if name in test:
            table.add_row("model (test segment)", name, format_measure(name, test[name]))
    console.print(table)
    console.print(statistics_table(doc["metrics"]["backtest"], title="backtest"))
    for note in doc.get("notes", []):
        console.print(f"note: {note}", highlight=False)
    timings = Table(title="stage timings")
    timings.add_column("stage")
    timings.add_column("seconds", justify="right")
    for stage, seconds in doc["timings"].items():
        timings.add_row(stage, f"{seconds:.2f}")
    timings.add_row("total", f"{sum(doc['timings'].values()):.2f}")
    console.print(timings)
    console.print(f"model id: {doc['model_id']}")
    console.print(f"outputs:  {doc['out_dir']}")
    console.print(f"report:   {doc['report']}")
    stderr_console().print(f"open {doc['report']} in a browser to see the backtest report", highlight=False)
